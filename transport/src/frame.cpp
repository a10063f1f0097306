#include <ember/host/error.hpp>
#include <ember/transport/byte_codec.hpp>
#include <ember/transport/frame.hpp>

namespace ember::transport {

std::array<std::uint8_t, frame_header_bytes> encode_frame_header(const frame_header& h) noexcept {
  std::array<std::uint8_t, frame_header_bytes> out{};
  std::size_t at = 0;
  auto put = [&](auto v) {
    for (std::size_t i = 0; i < sizeof(v); ++i)
      out[at++] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * i));
  };
  put(h.magic);
  put(h.version);
  put(h.type);
  put(h.flags);
  put(h.reserved);
  put(h.meta_bytes);
  put(h.body_bytes);
  return out;
}

frame_header decode_frame_header(std::span<const std::uint8_t> am_header, std::uint64_t body_length,
                                 const frame_limits& limits, const std::string& peer) {
  auto reject = [&](const std::string& why) -> frame_header {
    throw invalid_input("bad frame from peer " + peer + ": " + why);
  };
  if (am_header.size() < frame_header_bytes) {
    return reject("the header has " + std::to_string(am_header.size()) + " bytes, not at least " +
                  std::to_string(frame_header_bytes));
  }
  byte_reader r(am_header.first(frame_header_bytes), "frame header from peer " + peer);
  frame_header h;
  h.magic = r.get<std::uint32_t>("magic");
  h.version = r.get<std::uint16_t>("version");
  h.type = r.get<std::uint16_t>("type");
  h.flags = r.get<std::uint16_t>("flags");
  h.reserved = r.get<std::uint16_t>("reserved");
  h.meta_bytes = r.get<std::uint32_t>("meta_bytes");
  h.body_bytes = r.get<std::uint64_t>("body_bytes");
  if (h.magic != frame_magic) return reject("bad magic (not an ember message)");
  if (h.version != protocol_version) {
    return reject("protocol version " + std::to_string(h.version) + " is not supported (this " +
                  "build speaks version " + std::to_string(protocol_version) + ")");
  }
  if (h.reserved != 0) return reject("reserved bits are set");
  if (h.flags > frame_flag_segment) return reject("unknown flags " + std::to_string(h.flags));
  if (h.meta_bytes > limits.max_meta_bytes) {
    return reject("metadata of " + std::to_string(h.meta_bytes) + " bytes exceeds the limit of " +
                  std::to_string(limits.max_meta_bytes));
  }
  if (am_header.size() - frame_header_bytes != h.meta_bytes) {
    return reject("the header promises " + std::to_string(h.meta_bytes) +
                  " bytes of metadata but " +
                  std::to_string(am_header.size() - frame_header_bytes) + " arrived");
  }
  bool table = h.flags == frame_flag_segment;
  std::size_t limit = table ? limits.max_table_bytes : limits.max_message_bytes;
  if (h.body_bytes > limit) {
    return reject("a " + std::string(table ? "table" : "message") + " body of " +
                  std::to_string(h.body_bytes) + " bytes exceeds the limit of " +
                  std::to_string(limit));
  }
  if (h.body_bytes != body_length) {
    return reject("the header promises a body of " + std::to_string(h.body_bytes) + " bytes but " +
                  std::to_string(body_length) + " arrived");
  }
  return h;
}

}  // namespace ember::transport
