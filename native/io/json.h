// JSON from files we did not write (config.json, safetensors headers, indexes, adapter configs): parse errors name
// the source, and nesting is bounded, since printing or comparing a value recurses once per level (a header of
// a million '[' would overflow the stack).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tpo::io {

// Errors read "<source>: <subject> is not valid JSON (...)" (subject: "it" reads "<source>: not valid JSON").
nlohmann::json parse_json(std::string_view text, const std::string& source, int max_depth = 64, const char* subject = nullptr);

}  // namespace tpo::io
