// Inference over one video: batched generation with a KV cache, and log-probs of answers to a shared prompt
// computed at answer positions only. TPO asks several questions of one video and scores chosen and rejected
// answers to one prompt: both shapes of work are one call here.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/video_lm.h"

namespace tpo::model {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0;  // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // generation of a row ends after it emits one of these
  bool use_cache = true;          // false: a full forward per token (slow; the reference for the cache)
  bool share_prefix = true;       // the positions every prompt starts with run once (false: per prompt)
};

struct GenerateResult {
  std::vector<std::vector<int64_t>> tokens;  // per prompt, the new tokens (a stop token included)
  std::vector<std::string> finish_reasons;   // "stop" or "length"
};

// prompts: 1-D int64 ids each, holding the image id once when `video_tokens` is given (the same video for all).
// video_rope: Qwen2.5-VL's M-RoPE positions of the video's tokens (VideoTokens::rope), required for its videos.
GenerateResult generate(VideoLMImpl& lm, const std::vector<torch::Tensor>& prompts, const torch::Tensor& video_tokens,
                        const GenerateOptions& options, const VideoRope& video_rope = {});

struct AnswerLogprobs {
  std::vector<torch::Tensor> token_logprobs;  // per answer, [A_i] float32
  torch::Tensor sums;                         // [answers], the sum over each answer's tokens
  torch::Tensor log_sq_mass;                  // [answers] when asked: Σ over the answer's positions of log Σ_v p(v)²,
                                              // no gradient (WPO's weights, train/losses.h)
};

// One prompt (1-D ids, the image id once when there is a video) and the answers to score after it.
struct PromptAnswers {
  torch::Tensor prompt;
  std::vector<torch::Tensor> answers;
};

// log p(answer | prompt, video) for every answer of every prompt, all prompts about one video. With `share_prefix`
// the positions every prompt starts with (the text before the video, the video, and what follows it alike; for
// one prompt, all of it but its last token) run once with batch 1, and every (rest of the prompt, answer) row runs
// in one batch that reads their keys and values once; without, each row is its prompt and answer in full. Both
// give the same numbers; only answer positions go through lm_head.
// video_rope as generate's.
std::vector<AnswerLogprobs> prompts_logprobs(VideoLMImpl& lm, const std::vector<PromptAnswers>& items,
                                             const torch::Tensor& video_tokens, bool share_prefix = true,
                                             bool log_sq_mass = false, const VideoRope& video_rope = {});

// prompts_logprobs for one prompt.
AnswerLogprobs answer_logprobs(VideoLMImpl& lm, const torch::Tensor& prompt, const std::vector<torch::Tensor>& answers,
                               const torch::Tensor& video_tokens, bool share_prefix = true, bool log_sq_mass = false,
                               const VideoRope& video_rope = {});

// Visual tokens of the videos of one step, each encoded once: records about one video share its frames tensor, so
// the tower runs (and back-propagates) once for all of them. Visual tokens [V, D] pass through as they are.
class VisualTokenCache {
 public:
  explicit VisualTokenCache(VideoLMImpl& lm) : lm_(lm) {}
  torch::Tensor operator()(const torch::Tensor& video) {
    VideoInput input;
    input.video = video;
    return encoded(input).tokens;
  }
  // The tokens with what else the encoding gives (Qwen2.5-VL: their M-RoPE positions). A video is known by its
  // tensor: inputs sharing one share its layout too (the trainer passes a video's frames, text and grid together).
  const VideoTokens& encoded(const VideoInput& video);

 private:
  VideoLMImpl& lm_;
  std::unordered_map<const void*, VideoTokens> tokens_;
  VideoTokens given_;
};

// One prompt + answer sequence to score, with its own visual tokens (undefined without a video).
struct ScoredSequence {
  torch::Tensor prompt, answer, video_tokens;
  VideoRope video_rope;  // Qwen2.5-VL: the video's M-RoPE positions (VideoTokens::rope)
};

// Summed log p(answer_i | prompt_i, video_i) for every sequence, [N]: the numbers answer_logprobs gives without a
// shared prefix, from one forward over the right-padded batch. For small models, where the cost is the number of
// operations rather than their size, one batched forward is several times faster than N single ones.
torch::Tensor batch_answer_logprobs(VideoLMImpl& lm, const std::vector<ScoredSequence>& sequences);

// batch_answer_logprobs per token: [N, A_max] log-probs (zero past each answer) and, when asked, [N] Σ log Σ_v p(v)².
struct BatchScores {
  torch::Tensor token_logprobs;
  torch::Tensor log_sq_mass;
};
BatchScores batch_answer_scores(VideoLMImpl& lm, const std::vector<ScoredSequence>& sequences, bool log_sq_mass = false);

}  // namespace tpo::model
