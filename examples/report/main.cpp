// A sales report on generated data: orders joined with the item catalogue, revenue per
// category, best category first.
//
//   report [ORDERS]
//
// The catalogue is small, so the planner broadcasts it to every partition of the orders; the
// group-by aggregates each partition, shuffles the partial sums by category and merges them.
#include <cstdio>
#include <cstdlib>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/generators.hpp>
#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  using ember::aggregation_kind;
  using ember::col;
  ember::size_type orders = argc > 1 ? std::atoll(argv[1]) : 100'000;
  if (orders < 1) {
    std::cerr << "usage: report [ORDERS]\n";
    return 2;
  }
  try {
    auto cluster = ember::client::local();
    for (const auto& w : cluster.worker_descriptions()) std::cout << w << "\n";
    auto items = ember::items_for(orders);
    auto events = cluster.generate("events", orders, /*seed=*/42, /*cardinality=*/items);
    auto catalogue = cluster.generate("items", items, /*seed=*/43);
    auto result = events.join(catalogue, {"item_id"})
                      .with_columns({{"revenue", col("amount") * col("price")}})
                      .group_by({"category"}, {{aggregation_kind::count_all, "", "orders"},
                                               {aggregation_kind::sum, "revenue", "revenue"},
                                               {aggregation_kind::mean, "amount", "avg_amount"}})
                      .sort({{"revenue", /*descending=*/true}})
                      .run();
    const auto& t = result.result;
    auto category = ember::copy_strings(t.view().column("category"));
    auto count = ember::copy_values<std::int64_t>(t.view().column("orders"));
    auto revenue = ember::copy_values<double>(t.view().column("revenue"));
    auto avg = ember::copy_values<double>(t.view().column("avg_amount"));
    std::printf("%-10s %10s %16s %12s\n", "category", "orders", "revenue", "avg amount");
    std::int64_t total = 0;
    for (std::size_t i = 0; i < category.size(); ++i) {
      std::printf("%-10s %10lld %16.2f %12.2f\n", category[i]->c_str(),
                  static_cast<long long>(count[i]), revenue[i], avg[i]);
      total += count[i];
    }
    std::printf("total orders: %lld\n", static_cast<long long>(total));
    std::printf("%zu stages in %.3f s\n", result.metrics.stages.size(), result.metrics.seconds);
    return 0;
  } catch (const ember::invalid_input& e) {
    std::cerr << "report: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "report: " << e.what() << "\n";
    return 1;
  }
}
