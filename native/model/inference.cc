#include "model/inference.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>

namespace tpo::model {
namespace {

namespace F = torch::nn::functional;

struct Batch {
  torch::Tensor embeds;     // [B, L, D], left-padded
  torch::Tensor mask;       // [B, L], 0 on padding
  torch::Tensor positions;  // [B, L], counting real tokens only
};

// Splices each prompt's video and left-pads them to one length, so every row's next token is at the end.
Batch left_padded(VideoLMImpl& lm, const std::vector<torch::Tensor>& prompts, const torch::Tensor& video_tokens) {
  std::vector<torch::Tensor> rows;
  int64_t longest = 0;
  for (const auto& p : prompts) {
    if (p.dim() != 1 || p.numel() == 0) throw std::invalid_argument("each prompt must be a non-empty 1-D tensor of ids");
    const auto ids = p.to(torch::kInt64).unsqueeze(0);
    const bool has_image = (ids == (lm.config().mm ? lm.config().mm->image_token_index : -200)).any().item<bool>();
    rows.push_back(lm.embed(ids, torch::Tensor(), has_image ? video_tokens : torch::Tensor()).first[0]);
    longest = std::max(longest, rows.back().size(0));
  }
  const int64_t dim = rows[0].size(1);
  Batch b;
  b.embeds = torch::zeros({static_cast<int64_t>(rows.size()), longest, dim}, rows[0].options());
  b.mask = torch::zeros({static_cast<int64_t>(rows.size()), longest}, torch::TensorOptions().dtype(torch::kInt64).device(rows[0].device()));
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t len = rows[i].size(0);
    b.embeds[static_cast<int64_t>(i)].narrow(0, longest - len, len).copy_(rows[i]);
    b.mask[static_cast<int64_t>(i)].narrow(0, longest - len, len).fill_(1);
  }
  b.positions = (b.mask.cumsum(1) - 1).clamp_min(0);
  return b;
}

// Each prompt's plain position of its video's first token (the image id's index; -1 without one), for M-RoPE; and
// a Qwen2.5-VL video given without its positions is refused rather than run on plain RoPE.
torch::Tensor video_starts(VideoLMImpl& lm, const std::vector<torch::Tensor>& prompts, const torch::Tensor& video_tokens,
                           const VideoRope& rope) {
  if (!lm.visual || !video_tokens.defined()) return {};
  if (!rope.offsets.defined() || rope.offsets.size(1) != video_tokens.size(0))
    throw std::invalid_argument("a Qwen2.5-VL video's visual tokens need their M-RoPE positions (its grid): give the "
                                "video's frames (pixelValues), not visual tokens alone");
  const int64_t image_id = lm.config().mm->image_token_index;
  std::vector<int64_t> starts;
  for (const auto& p : prompts) {
    const auto where = (p.to(torch::kInt64) == image_id).nonzero();
    starts.push_back(where.size(0) > 0 ? where[0][0].item<int64_t>() : -1);
  }
  return torch::tensor(starts, torch::TensorOptions().dtype(torch::kInt64).device(lm.model->embed_tokens->weight.device()));
}

// Options that map a forward's plain positions to M-RoPE's (none without a Qwen2.5-VL video).
Qwen2ModelImpl::Options with_rope(Qwen2ModelImpl::Options o, const VideoRope& rope, const torch::Tensor& starts) {
  if (starts.defined()) {
    o.video_rope = &rope;
    o.video_start = starts;
  }
  return o;
}

torch::Tensor next_tokens(const torch::Tensor& logits, const GenerateOptions& o, at::Generator& gen) {
  if (o.temperature <= 0) return logits.argmax(-1);
  auto scaled = logits.to(torch::kFloat32) / o.temperature;
  if (o.top_p < 1.0) {
    // Nucleus: keep the smallest set of tokens whose probability reaches top_p (the first always stays).
    auto [sorted, order] = scaled.sort(-1, /*descending=*/true);
    auto cumulative = sorted.softmax(-1).cumsum(-1);
    auto drop = (cumulative - sorted.softmax(-1)) > o.top_p;
    sorted = sorted.masked_fill(drop, -std::numeric_limits<float>::infinity());
    scaled = torch::full_like(scaled, -std::numeric_limits<float>::infinity()).scatter(-1, order, sorted);
  }
  return torch::multinomial(scaled.softmax(-1).cpu(), 1, /*replacement=*/false, gen).squeeze(-1).to(logits.device());
}

torch::Tensor last_logits(VideoLMImpl& lm, const torch::Tensor& hidden) {
  return F::linear(hidden.select(1, hidden.size(1) - 1), lm.lm_head_weight());
}

}  // namespace

namespace {

// The longest run of positions every prompt starts with, counted in embedding positions (the image id stands for
// the same video in every prompt), leaving each prompt at least its last position to run on its own.
int64_t shared_prefix(const std::vector<torch::Tensor>& prompts, int64_t image_id, int64_t video_length) {
  std::vector<std::vector<int64_t>> ids;
  size_t shortest = SIZE_MAX;
  for (const auto& p : prompts) {
    const auto t = p.to(torch::kInt64).contiguous().cpu();
    ids.emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    shortest = std::min(shortest, ids.back().size());
  }
  size_t common = 0;
  while (common < shortest && std::all_of(ids.begin(), ids.end(), [&](const auto& r) { return r[common] == ids[0][common]; })) ++common;
  common = std::min(common, shortest - 1);  // every row keeps its last token, whose logits start generation
  const auto image = std::find(ids[0].begin(), ids[0].begin() + static_cast<std::ptrdiff_t>(common), image_id);
  const bool video_shared = image != ids[0].begin() + static_cast<std::ptrdiff_t>(common);
  return static_cast<int64_t>(common) + (video_shared ? video_length - 1 : 0);
}

// A full forward per token over the left-padded batch: the slow reference the cached path is tested against.
GenerateResult generate_without_cache(VideoLMImpl& lm, const std::vector<torch::Tensor>& prompts, const torch::Tensor& video_tokens,
                                      const GenerateOptions& o, at::Generator& gen, const VideoRope& rope,
                                      const torch::Tensor& starts) {
  const auto options = with_rope({}, rope, starts);
  Batch batch = left_padded(lm, prompts, video_tokens);
  const int64_t rows = batch.embeds.size(0);
  GenerateResult result;
  result.tokens.resize(static_cast<size_t>(rows));
  result.finish_reasons.assign(static_cast<size_t>(rows), "length");
  std::vector<bool> done(static_cast<size_t>(rows), false);
  torch::Tensor embeds = batch.embeds, mask = batch.mask, positions = batch.positions;
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    const auto out = lm.model->forward(embeds, mask, positions, options);
    const auto token = next_tokens(last_logits(lm, out.last_hidden_state), o, gen).cpu();
    bool all_done = true;
    for (int64_t r = 0; r < rows; ++r) {
      const auto i = static_cast<size_t>(r);
      if (done[i]) continue;
      const int64_t t = token[r].item<int64_t>();
      result.tokens[i].push_back(t);
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), t) != o.stop_ids.end()) {
        done[i] = true;
        result.finish_reasons[i] = "stop";
      }
      all_done = all_done && done[i];
    }
    if (all_done) break;
    embeds = torch::cat({embeds, lm.model->embed_tokens(token.to(embeds.device()).unsqueeze(1))}, 1);
    mask = torch::cat({mask, torch::ones({rows, 1}, mask.options())}, 1);
    positions = torch::cat({positions, positions.select(1, positions.size(1) - 1).unsqueeze(1) + 1}, 1);
  }
  return result;
}

}  // namespace

// Generation with prefix sharing: the positions every prompt starts with (the system text and the video, for
// questions about one video) run once with batch 1, their keys and values are copied to every row of a cache
// reserved for the whole generation, and only each prompt's own remainder runs batched (left-padded, so every
// row's next token is in the last column). Then one position a step, written into the cache in place.
GenerateResult generate(VideoLMImpl& lm, const std::vector<torch::Tensor>& prompts, const torch::Tensor& video_tokens,
                        const GenerateOptions& o, const VideoRope& rope) {
  if (prompts.empty()) throw std::invalid_argument("generate: no prompts");
  const auto starts = video_starts(lm, prompts, video_tokens, rope);
  if (o.max_new_tokens < 1) throw std::invalid_argument("generate: max_new_tokens must be >= 1");
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);  // sampling draws on the CPU, for the same
                                                                 // tokens from a seed on any device
  const auto& text = *lm.config().text;
  const int64_t image_id = lm.config().mm ? lm.config().mm->image_token_index : -200;
  std::vector<torch::Tensor> rows;  // each prompt's embeddings [L_i, D], its video spliced in
  int64_t longest = 0;
  for (const auto& p : prompts) {
    if (p.dim() != 1 || p.numel() == 0) throw std::invalid_argument("each prompt must be a non-empty 1-D tensor of ids");
    const auto ids = p.to(torch::kInt64).unsqueeze(0);
    const bool has_image = (ids == image_id).any().item<bool>();
    rows.push_back(lm.embed(ids, torch::Tensor(), has_image ? video_tokens : torch::Tensor()).first[0]);
    longest = std::max(longest, rows.back().size(0));
  }
  if (longest + o.max_new_tokens > text.max_position_embeddings)
    throw std::invalid_argument("generate: the prompt (" + std::to_string(longest) + " positions) plus " +
                                std::to_string(o.max_new_tokens) + " new tokens exceeds max_position_embeddings (" +
                                std::to_string(text.max_position_embeddings) + ")");
  if (!o.use_cache) return generate_without_cache(lm, prompts, video_tokens, o, gen, rope, starts);

  const auto b = static_cast<int64_t>(rows.size());
  const int64_t shared = o.share_prefix ? shared_prefix(prompts, image_id, video_tokens.defined() ? video_tokens.size(0) : 1) : 0;
  const auto options = rows[0].options();
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(options.device());
  KVCache prefix;
  Qwen2ModelImpl::Options scoring;
  scoring.padding = PaddingOutputs::Unused;
  if (shared > 0) {
    // (the shared positions are every prompt's: the first prompt's video start is theirs)
    Qwen2ModelImpl::Options o = with_rope(scoring, rope, starts.defined() ? starts.narrow(0, 0, 1) : starts);
    o.cache = &prefix;
    o.outputs_for_last = 0;  // only the shared positions' keys and values are wanted
    lm.model->forward(rows[0].narrow(0, 0, shared).unsqueeze(0), {}, {}, o);
  }

  // The prompts' own remainders, left-padded to one length S after the shared positions.
  int64_t suffix = 0;
  for (const auto& r : rows) suffix = std::max(suffix, r.size(0) - shared);
  const int64_t capacity = shared + suffix + o.max_new_tokens;
  auto embeds = torch::zeros({b, suffix, rows[0].size(1)}, options);
  auto key_mask = torch::zeros({b, capacity}, index_options);  // 1 where a row has a token, over every position
  key_mask.narrow(1, 0, shared).fill_(1);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t len = rows[static_cast<size_t>(i)].size(0) - shared;
    embeds[i].narrow(0, suffix - len, len).copy_(rows[static_cast<size_t>(i)].narrow(0, shared, len));
    key_mask[i].narrow(0, shared + suffix - len, len).fill_(1);
  }
  // Positions count each row's real tokens only, so a padded row continues as if it ran alone.
  auto positions = (key_mask.narrow(1, 0, shared + suffix).cumsum(1) - 1).clamp_min(0).narrow(1, shared, suffix);
  scoring = with_rope(scoring, rope, starts);
  KVCache cache;
  const int64_t head_dim = text.head_dim;
  cache.reserve(text.num_hidden_layers, b, text.num_key_value_heads, capacity, head_dim, options);
  if (shared > 0) cache.start_with(prefix);
  prefix = KVCache();
  key_mask.narrow(1, shared + suffix, o.max_new_tokens).fill_(1);  // generated positions are real in every row
  scoring.cache = &cache;
  Qwen2ModelImpl::Options last = scoring;
  last.outputs_for_last = 1;  // every row's next token comes from its last position
  auto out = lm.model->forward(embeds, key_mask.narrow(1, 0, shared + suffix), positions, last);
  auto next_position = positions.select(1, suffix - 1).unsqueeze(1) + 1;
  // Every step's mask at once: a step's query sees every earlier position of its row but the padding; with no
  // padding (prompts of one length after the shared part) no mask at all.
  AttentionMask step_mask;
  torch::Tensor every_step;  // [B, 1, 1, capacity]: a step of cache length T reads its first T keys
  const auto valid = key_mask.to(torch::kBool);
  if (!valid.all().item<bool>())
    every_step = torch::zeros({b, 1, 1, capacity}, options).masked_fill_(valid.logical_not().view({b, 1, 1, capacity}),
                                                                         -std::numeric_limits<double>::infinity());
  scoring.attention = &step_mask;

  GenerateResult result;
  result.tokens.resize(static_cast<size_t>(b));
  result.finish_reasons.assign(static_cast<size_t>(b), "length");
  std::vector<bool> done(static_cast<size_t>(b), false);
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    const auto token = next_tokens(last_logits(lm, out.last_hidden_state), o, gen);  // [B]
    const auto host = token.to(torch::kCPU, torch::kInt64).contiguous();
    const int64_t* picked = host.data_ptr<int64_t>();
    bool all_done = true;
    for (int64_t r = 0; r < b; ++r) {
      const auto i = static_cast<size_t>(r);
      if (done[i]) continue;
      result.tokens[i].push_back(picked[r]);
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), picked[r]) != o.stop_ids.end()) {
        done[i] = true;
        result.finish_reasons[i] = "stop";
      }
      all_done = all_done && done[i];
    }
    if (all_done || step + 1 == o.max_new_tokens) break;
    const int64_t length = cache.length() + 1;
    if (every_step.defined()) step_mask.mask = every_step.narrow(3, 0, length);
    out = lm.model->forward(lm.model->embed_tokens(token.unsqueeze(1)), {}, next_position, scoring);
    next_position = next_position + 1;
  }
  return result;
}

namespace {

void check_answer(const torch::Tensor& answer, int64_t vocab, const std::string& which) {
  if (answer.dim() != 1 || answer.numel() == 0) throw std::invalid_argument("logprobs: " + which + " has no tokens");
  if ((answer < 0).any().item<bool>() || (answer >= vocab).any().item<bool>())
    throw std::invalid_argument("logprobs: " + which + " holds ids outside the vocabulary [0, " + std::to_string(vocab) + ")");
}

// One sequence to score: the embeddings after the shared prefix (the rest of its prompt, then the answer) and the
// answer's ids, which are its last positions.
struct Row {
  torch::Tensor embeds;  // [l, D]
  torch::Tensor answer;  // [A] int64, A < l: the row holds at least one prompt position
};

// log p of each row's answer, every row continuing `prefix` ([1, s, D], undefined for none): the prefix runs once,
// the rows in one right-padded batch that reads the prefix's keys and values (LayerInputs::shared). Returns the
// per-token log-probs [R, A_max], zero past each answer. lm_head runs at answer positions only. With `log_sq_mass`,
// also each row's Σ over its answer positions of log Σ_v p(v)² [R], without gradient.
torch::Tensor score_rows(VideoLMImpl& lm, const torch::Tensor& prefix, const std::vector<Row>& rows,
                         torch::Tensor* log_sq_mass = nullptr, const VideoRope& rope = {},
                         const torch::Tensor& starts = {}, const std::vector<const VideoRope*>& row_ropes = {}) {
  const auto& text = *lm.config().text;
  const int64_t s = prefix.defined() ? prefix.size(1) : 0;
  const auto r = static_cast<int64_t>(rows.size());
  int64_t longest = 0, longest_answer = 0;
  for (const auto& row : rows) {
    longest = std::max(longest, row.embeds.size(0));
    longest_answer = std::max(longest_answer, row.answer.numel());
  }
  if (s + longest > text.max_position_embeddings)
    throw std::invalid_argument("logprobs: prompt and answer (" + std::to_string(s + longest) + " positions) exceed max_position_embeddings (" +
                                std::to_string(text.max_position_embeddings) + ")");
  KVCache shared;
  if (s > 0) {
    Qwen2ModelImpl::Options o = with_rope({}, rope, starts.defined() ? starts.narrow(0, 0, 1) : starts);
    o.cache = &shared;
    o.padding = PaddingOutputs::Unused;
    o.outputs_for_last = 0;  // the rows read its keys and values, nothing else
    lm.model->forward(prefix, {}, {}, o);
  }
  // Right padding: real tokens never attend to the padding after them, so no mask is needed (PaddingOutputs::Unused).
  const auto options = rows.front().embeds.options();
  const auto d = rows.front().embeds.size(1);
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(options.device());
  auto mask = torch::zeros({r, longest}, index_options);
  std::vector<torch::Tensor> padded;
  for (int64_t i = 0; i < r; ++i) {
    const auto& e = rows[static_cast<size_t>(i)].embeds;
    padded.push_back(e.size(0) == longest ? e : torch::cat({e, torch::zeros({longest - e.size(0), d}, options)}, 0));
    mask[i].narrow(0, 0, e.size(0)).fill_(1);
  }
  Qwen2ModelImpl::Options o = with_rope({}, rope, starts);
  o.shared_prefix = s > 0 ? &shared : nullptr;
  o.padding = PaddingOutputs::Unused;
  torch::Tensor positions;
  if (!row_ropes.empty()) {
    // Each row about its own video (batched sequences): its M-RoPE positions from its own video's grid.
    std::vector<torch::Tensor> per_row;
    const auto plain = torch::arange(s, s + longest, index_options).unsqueeze(0);
    for (int64_t i = 0; i < r; ++i) {
      const VideoRope* own = row_ropes[static_cast<size_t>(i)];
      per_row.push_back(own && own->offsets.defined() ? mrope_positions(plain, starts.narrow(0, i, 1), *own)
                                                      : plain.unsqueeze(0).expand({3, 1, longest}));
    }
    positions = torch::cat(per_row, 1);
    o.video_rope = nullptr;
  }
  const auto hidden = lm.model->forward(torch::stack(padded), mask, positions, o).last_hidden_state;  // [R, L, D]
  // The hidden state before each answer token, gathered into [R, A, D]; ids [R, A] and their mask beside it.
  auto index = torch::zeros({r, longest_answer}, index_options);
  auto ids = torch::zeros({r, longest_answer}, index_options);
  auto answer_mask = torch::zeros({r, longest_answer}, options.dtype(torch::kFloat32));
  for (int64_t i = 0; i < r; ++i) {
    const auto& row = rows[static_cast<size_t>(i)];
    const int64_t l = row.embeds.size(0), a = row.answer.numel();
    index[i].narrow(0, 0, a).copy_(torch::arange(l - a - 1, l - 1, index_options));
    ids[i].narrow(0, 0, a).copy_(row.answer);
    answer_mask[i].narrow(0, 0, a).fill_(1);
  }
  const auto predictors = hidden.gather(1, index.unsqueeze(-1).expand({r, longest_answer, d}));
  const auto logits = F::linear(predictors, lm.lm_head_weight()).to(torch::kFloat32);
  if (log_sq_mass) {
    torch::NoGradGuard no_grad;
    const auto z = logits.detach();
    *log_sq_mass = ((z * 2).logsumexp(-1) - 2 * z.logsumexp(-1)).mul(answer_mask).sum(1);
  }
  return logits.log_softmax(-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1) * answer_mask;
}

}  // namespace

std::vector<AnswerLogprobs> prompts_logprobs(VideoLMImpl& lm, const std::vector<PromptAnswers>& items,
                                             const torch::Tensor& video_tokens, bool share_prefix, bool log_sq_mass,
                                             const VideoRope& rope) {
  if (items.empty()) throw std::invalid_argument("logprobs: no prompts");
  const auto& text = *lm.config().text;
  const int64_t image_id = lm.config().mm ? lm.config().mm->image_token_index : -200;
  const auto device = lm.model->embed_tokens->weight.device();
  std::vector<torch::Tensor> prompts, embeds;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    const std::string which = items.size() > 1 ? "prompt " + std::to_string(i) : "the prompt";
    if (item.prompt.dim() != 1 || item.prompt.numel() == 0) throw std::invalid_argument("logprobs: " + which + " must be a non-empty 1-D tensor of ids");
    if (item.answers.empty()) throw std::invalid_argument("logprobs: " + which + " has no answers");
    const auto ids = item.prompt.to(torch::kInt64);
    const bool has_image = (ids == image_id).any().item<bool>();
    prompts.push_back(ids);
    embeds.push_back(lm.embed(ids.unsqueeze(0), torch::Tensor(), has_image ? video_tokens : torch::Tensor()).first[0]);
  }
  const int64_t s = share_prefix ? shared_prefix(prompts, image_id, video_tokens.defined() ? video_tokens.size(0) : 1) : 0;
  const auto prompt_starts = video_starts(lm, prompts, video_tokens, rope);
  std::vector<int64_t> row_prompt;  // each row's prompt, for its video start
  std::vector<Row> rows;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto own = embeds[i].narrow(0, s, embeds[i].size(0) - s);
    for (size_t j = 0; j < items[i].answers.size(); ++j) {
      const auto answer = items[i].answers[j].to(torch::kInt64);
      check_answer(answer, text.vocab_size, (items.size() > 1 ? "prompt " + std::to_string(i) + " " : "") + "answer " + std::to_string(j));
      const auto on_device = answer.to(device);
      rows.push_back({torch::cat({own, lm.model->embed_tokens(on_device)}, 0), on_device});
      row_prompt.push_back(static_cast<int64_t>(i));
    }
  }
  const auto row_starts = prompt_starts.defined()
                              ? prompt_starts.index_select(0, torch::tensor(row_prompt, torch::kInt64).to(prompt_starts.device()))
                              : torch::Tensor();
  torch::Tensor sq_mass;
  const auto logp = score_rows(lm, s > 0 ? embeds[0].narrow(0, 0, s).unsqueeze(0) : torch::Tensor(), rows,
                               log_sq_mass ? &sq_mass : nullptr, rope, row_starts);
  const auto sums = logp.sum(1);
  std::vector<AnswerLogprobs> out;
  int64_t row = 0;
  for (const auto& item : items) {
    AnswerLogprobs a;
    const auto n = static_cast<int64_t>(item.answers.size());
    a.sums = sums.narrow(0, row, n).cpu();
    if (log_sq_mass) a.log_sq_mass = sq_mass.narrow(0, row, n).cpu();
    for (int64_t j = 0; j < n; ++j) a.token_logprobs.push_back(logp[row + j].narrow(0, 0, item.answers[static_cast<size_t>(j)].numel()).cpu());
    row += n;
    out.push_back(std::move(a));
  }
  return out;
}

AnswerLogprobs answer_logprobs(VideoLMImpl& lm, const torch::Tensor& prompt, const std::vector<torch::Tensor>& answers,
                               const torch::Tensor& video_tokens, bool share_prefix, bool log_sq_mass, const VideoRope& rope) {
  if (answers.empty()) throw std::invalid_argument("logprobs: no answers");
  return prompts_logprobs(lm, {{prompt, answers}}, video_tokens, share_prefix, log_sq_mass, rope).front();
}

const VideoTokens& VisualTokenCache::encoded(const VideoInput& video) {
  if (!video.video.defined() || video.video.dim() != 4) {
    given_ = encode_video_input(lm_, video);
    return given_;
  }
  auto& tokens = tokens_[video.video.unsafeGetTensorImpl()];
  if (!tokens.tokens.defined()) tokens = encode_video_input(lm_, video);
  return tokens;
}

torch::Tensor batch_answer_logprobs(VideoLMImpl& lm, const std::vector<ScoredSequence>& sequences) {
  return batch_answer_scores(lm, sequences).token_logprobs.sum(1);
}

BatchScores batch_answer_scores(VideoLMImpl& lm, const std::vector<ScoredSequence>& sequences, bool log_sq_mass) {
  if (sequences.empty()) throw std::invalid_argument("logprobs: no sequences");
  const auto& text = *lm.config().text;
  const int64_t image_id = lm.config().mm ? lm.config().mm->image_token_index : -200;
  const auto device = lm.model->embed_tokens->weight.device();
  std::vector<Row> rows;
  std::vector<const VideoRope*> ropes;
  std::vector<int64_t> starts;
  for (size_t i = 0; i < sequences.size(); ++i) {
    const auto& s = sequences[i];
    const std::string which = "sequence " + std::to_string(i);
    if (s.prompt.dim() != 1 || s.prompt.numel() == 0) throw std::invalid_argument("logprobs: " + which + ": the prompt must be a non-empty 1-D tensor of ids");
    const auto answer = s.answer.to(torch::kInt64);
    check_answer(answer, text.vocab_size, which + ": the answer");
    const auto ids = s.prompt.to(torch::kInt64).unsqueeze(0);
    const bool has_image = (ids == image_id).any().item<bool>();
    if (lm.visual) {
      // Qwen2.5-VL: each sequence's positions from its own video's grid
      const auto row_starts = video_starts(lm, {s.prompt}, has_image ? s.video_tokens : torch::Tensor(), s.video_rope);
      ropes.push_back(has_image ? &s.video_rope : nullptr);
      starts.push_back(row_starts.defined() ? row_starts[0].item<int64_t>() : -1);
    }
    const auto prompt = lm.embed(ids, torch::Tensor(), has_image ? s.video_tokens : torch::Tensor()).first[0];
    const auto on_device = answer.to(device);
    rows.push_back({torch::cat({prompt, lm.model->embed_tokens(on_device)}, 0), on_device});
  }
  BatchScores out;
  const auto device_starts = torch::tensor(starts, torch::TensorOptions().dtype(torch::kInt64).device(device));
  out.token_logprobs = score_rows(lm, torch::Tensor(), rows, log_sq_mass ? &out.log_sq_mass : nullptr, {},
                                  ropes.empty() ? torch::Tensor() : device_starts, ropes);
  return out;
}

}  // namespace tpo::model
