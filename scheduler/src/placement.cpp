#include <ember/scheduler/placement.hpp>

namespace ember {
namespace {

bool has_room(const worker_load& w, const placement_policy& policy) {
  return w.assigned < w.slots * (1 + policy.queue_depth_per_slot);
}

// a is less loaded than b: fewer tasks per slot (compared without division), then lower id.
bool less_loaded(const worker_load& a, const worker_load& b) {
  auto lhs = static_cast<std::int64_t>(a.assigned) * b.slots;
  auto rhs = static_cast<std::int64_t>(b.assigned) * a.slots;
  return lhs != rhs ? lhs < rhs : a.id < b.id;
}

}  // namespace

std::optional<int> choose_worker(const std::map<int, std::int64_t>& input_bytes,
                                 std::span<const worker_load> workers,
                                 const placement_policy& policy) {
  const worker_load* least = nullptr;
  const worker_load* holder = nullptr;
  std::int64_t held = 0;
  for (const auto& w : workers) {
    if (!has_room(w, policy)) continue;
    if (least == nullptr || less_loaded(w, *least)) least = &w;
    auto it = input_bytes.find(w.id);
    auto bytes = it == input_bytes.end() ? 0 : it->second;
    if (bytes <= 0) continue;
    if (holder == nullptr || bytes > held || (bytes == held && less_loaded(w, *holder))) {
      holder = &w;
      held = bytes;
    }
  }
  if (least == nullptr) return std::nullopt;
  if (holder == nullptr) return least->id;
  // Tasks per slot, compared without division: holder - least > imbalance.
  auto holder_load = static_cast<std::int64_t>(holder->assigned) * least->slots;
  auto least_load = static_cast<std::int64_t>(least->assigned) * holder->slots;
  auto slack =
      static_cast<std::int64_t>(policy.max_imbalance_per_slot) * holder->slots * least->slots;
  return holder_load - least_load > slack ? least->id : holder->id;
}

std::map<int, std::int64_t> tier_weighted_bytes(const std::map<int, input_residency>& residency) {
  std::map<int, std::int64_t> out;
  for (const auto& [worker, r] : residency) out[worker] = 4 * r.device + 2 * r.host + r.disk;
  return out;
}

}  // namespace ember
