// Chat templates tpo writes itself, for checkpoints whose tokenizer carries none that takes tpo's messages (string
// contents): Video-LLaVA's conversation format.
//
// Video-LLaVA (and LLaVA-Hound-DPO, trained on its code) use LLaVA's conv_llava_v1: the system text, then
// "USER: " + question + " ", then "ASSISTANT:" for the answer, which ends with "</s>":
//   "<s>A chat between ... questions. USER: <image>\nWhat happens first? ASSISTANT: The red circle ...</s>"
// The video stands where <image> is (transformers' processor writes <video> there; tpo's placeholder is <image>).
// The answer is tokenized apart from the prompt, as LLaVA's tokenizer_image_token splits at the image: its leading
// space is the tokenizer's (SentencePiece's "▁The"), so the template writes the answer right after "ASSISTANT:".

/** conv_llava_v1's system message. */
export const VIDEO_LLAVA_SYSTEM =
  "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.";

/** Video-LLaVA's conversation as a chat template; `system` is the default system message ('' for none). */
export function videoLlavaChatTemplate(system: string = VIDEO_LLAVA_SYSTEM): string {
  return (
    "{% if bos_token %}{{ bos_token }}{% endif %}" +
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}{% set turns = messages[1:] %}" +
    `{% else %}{% set system = ${JSON.stringify(system)} %}{% set turns = messages %}{% endif %}` +
    "{% if system %}{{ system + ' ' }}{% endif %}" +
    "{% for message in turns %}{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}" +
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT:' + message['content'] + eos_token }}{% endif %}{% endfor %}" +
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
  );
}
