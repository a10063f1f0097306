#include "cluster_flags.hpp"

#include <fstream>
#include <sstream>

#include <ember/host/error.hpp>

namespace ember::cli {

void cluster_flags::add_to(CLI::App& cmd) {
  cmd.add_option("--scheduler", scheduler,
                 "HOST:PORT of a running `ember scheduler` (default: an embedded local cluster)");
  cmd.add_option("--token-file", token_file, "File holding the cluster token");
  cmd.add_flag("--shared-memory", shared_memory,
               "Let UCX use shared memory to a scheduler on this host");
}

client cluster_flags::make_client(client_options options) const {
  if (scheduler.empty()) return client::local(options);
  if (!token_file.empty()) options.token = read_token_file(token_file);
  options.shared_memory = shared_memory;
  return client::connect(scheduler, options);
}

exchange_choice parse_exchange(const std::string& text) {
  if (text == "auto") return exchange_choice::automatic;
  if (text == "ucx") return exchange_choice::ucx;
  if (text == "nccl") return exchange_choice::nccl;
  throw invalid_input("--exchange: '" + text + "' is not one of auto, ucx, nccl");
}

std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  EMBER_EXPECTS(in.good(), invalid_input, "cannot read the token file " + path);
  std::stringstream text;
  text << in.rdbuf();
  auto token = text.str();
  auto first = token.find_first_not_of(" \t\r\n");
  auto last = token.find_last_not_of(" \t\r\n");
  EMBER_EXPECTS(first != std::string::npos, invalid_input, "the token file " + path + " is empty");
  return token.substr(first, last - first + 1);
}

}  // namespace ember::cli
