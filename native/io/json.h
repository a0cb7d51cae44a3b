// JSON from files we did not write (config.json, safetensors headers, indexes, adapter configs): parse errors name
// the source, and nesting is bounded, since printing or comparing a value recurses once per level (a header of
// a million '[' would overflow the stack).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tpo::io {

// Errors read "<source>: <subject> is not valid JSON (...)" (no subject: "<source>: not valid JSON (...)").
// (Inline: one small function is not worth a translation unit of its own, each costing the torch PCH to compile.)
inline nlohmann::json parse_json(std::string_view text, const std::string& source, int max_depth = 64,
                                 const char* subject = nullptr) {
  const std::string prefix = source + ": " + (subject ? std::string(subject) + " is " : std::string());
  struct TooDeep {};
  const auto limit = [max_depth](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    if ((event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) &&
        depth >= max_depth)
      throw TooDeep{};
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), limit);
  } catch (const TooDeep&) {
    throw std::invalid_argument(prefix + "JSON nested deeper than " + std::to_string(max_depth) + " levels");
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(prefix + "not valid JSON (" + e.what() + ")");
  }
}

}  // namespace tpo::io
