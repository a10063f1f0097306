#pragma once
// Checking a plan before anything runs: every node's output columns, so that an unknown column,
// a type mismatch or a malformed node is reported when the plan is built (naming the column and
// the node), not halfway through a job.
#include <ember/scheduler/plan.hpp>
#include <vector>

namespace ember {

/// The output schema of every node of `p` (index = node id), checking the whole plan: inputs
/// refer to earlier nodes, the root exists, columns exist and have types the operators accept,
/// output names do not repeat, sizes are not negative, generators and files exist. Exchange
/// sources are accepted only when `allow_exchange` (stage bodies); in a logical plan they are
/// an error. Throws ember::invalid_input with a message that names the node ("node 3
/// (aggregate): unknown column 'x' (the table has: a, b)"). Pure function; thread-safe.
[[nodiscard]] std::vector<schema> infer_schemas(const plan& p, bool allow_exchange = false);

/// The schema of the root's output (checks the whole plan like infer_schemas).
[[nodiscard]] schema output_schema(const plan& p);

/// The schema `op` produces from its inputs' schemas (in the order of inputs_of(op)). Throws
/// ember::invalid_input without the node prefix.
[[nodiscard]] schema infer_node_schema(const node_op& op, const std::vector<const schema*>& inputs);

}  // namespace ember
