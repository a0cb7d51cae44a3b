#include "io/json.h"

#include <stdexcept>

namespace tpo::io {

nlohmann::json parse_json(std::string_view text, const std::string& source, int max_depth, const char* subject) {
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
