// The deployment files in docker/ parse and say what a cluster needs: compose.yaml and the
// Kubernetes manifests through a YAML parser, the Dockerfiles and scripts as text. The EMBER_*
// variables they set are the ones `ember scheduler|worker --help` lists, and both READMEs
// document every one of those.
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "common/paths.hpp"

namespace {

namespace fs = std::filesystem;

fs::path docker_dir() { return ember::test::source_dir() / "docker"; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs a shell command; its exit status and stdout.
std::pair<int, std::string> shell_output(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::string out;
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// node[key], looking through YAML merge keys (`<<: *anchor`), which yaml-cpp leaves as they are;
// an undefined node (false) when missing.
YAML::Node get(const YAML::Node& node, const std::string& key) {
  const YAML::Node missing(YAML::NodeType::Undefined);
  if (!node.IsMap()) return missing;
  if (node[key]) return node[key];
  if (auto merged = node["<<"]) {
    if (merged.IsMap()) return get(merged, key);
    if (merged.IsSequence())
      for (const auto& m : merged)
        if (auto v = get(m, key)) return v;
  }
  return missing;
}

std::vector<std::string> strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  if (seq.IsSequence())
    for (const auto& s : seq) out.push_back(s.as<std::string>());
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The EMBER_* variables `ember scheduler` and `ember worker` read (their --help lists them).
std::set<std::string> variables_ember_reads() {
  std::set<std::string> names;
  for (const auto* cmd : {"scheduler", "worker"}) {
    auto [status, help] =
        shell_output(ember::test::ember_executable().string() + " " + cmd + " --help 2>&1");
    EXPECT_EQ(status, 0) << help;
    std::regex env("Env:(EMBER_[A-Z_]+)");
    for (std::sregex_iterator it(help.begin(), help.end(), env), end; it != end; ++it)
      names.insert((*it)[1]);
  }
  return names;
}

// ---- compose.yaml
// ---------------------------------------------------------------------------------

class compose_file : public ::testing::Test {
 protected:
  void SetUp() override { _doc = YAML::LoadFile((docker_dir() / "compose.yaml").string()); }
  YAML::Node service(const std::string& name) { return _doc["services"][name]; }
  // environment as a map (compose also allows a list of NAME=value).
  static std::map<std::string, std::string> environment(const YAML::Node& service) {
    std::map<std::string, std::string> env;
    auto e = get(service, "environment");
    if (e.IsMap())
      for (const auto& kv : e) env[kv.first.as<std::string>()] = kv.second.as<std::string>();
    for (const auto& s : strings(e)) env[s.substr(0, s.find('='))] = s.substr(s.find('=') + 1);
    return env;
  }
  YAML::Node _doc;
};

TEST_F(compose_file, HasASchedulerAndGpuWorkersWithReservations) {
  ASSERT_TRUE(_doc["services"].IsMap());
  ASSERT_TRUE(service("scheduler").IsMap());
  ASSERT_TRUE(service("worker").IsMap());
  EXPECT_EQ(strings(get(service("scheduler"), "command")), std::vector<std::string>{"scheduler"});
  int gpu_workers = 0;
  for (const auto& kv : _doc["services"]) {
    auto name = kv.first.as<std::string>();
    if (name.rfind("worker", 0) != 0) continue;
    SCOPED_TRACE(name);
    ++gpu_workers;
    EXPECT_EQ(strings(get(kv.second, "command")), std::vector<std::string>{"worker"});
    auto devices = get(kv.second, "deploy")["resources"]["reservations"]["devices"];
    ASSERT_TRUE(devices.IsSequence() && devices.size() >= 1);
    EXPECT_EQ(devices[0]["driver"].as<std::string>(), "nvidia");
    EXPECT_TRUE(contains(strings(devices[0]["capabilities"]), "gpu"));
    EXPECT_TRUE(devices[0]["count"] || devices[0]["device_ids"]);
    auto env = environment(kv.second);
    EXPECT_EQ(env["EMBER_SCHEDULER"], "scheduler:4242");
    EXPECT_EQ(env["EMBER_BACKEND"], "cuda");
  }
  EXPECT_GE(gpu_workers, 2);
  auto cpu = service("cpu-worker");
  ASSERT_TRUE(cpu.IsMap());
  EXPECT_TRUE(contains(strings(cpu["profiles"]), "cpu-worker"));
  EXPECT_EQ(environment(cpu)["EMBER_BACKEND"], "cpu");
  EXPECT_FALSE(get(cpu, "deploy")) << "the CPU worker reserves no GPU";
}

TEST_F(compose_file, TheTokenIsASecretFileAndTheDataVolumeIsShared) {
  auto secret = _doc["secrets"]["ember_token"];
  ASSERT_TRUE(secret.IsMap());
  EXPECT_TRUE(secret["file"]);
  ASSERT_TRUE(_doc["volumes"].IsMap());
  ASSERT_TRUE(_doc["volumes"]["ember-data"]);
  for (const auto& kv : _doc["services"]) {
    auto name = kv.first.as<std::string>();
    SCOPED_TRACE(name);
    EXPECT_TRUE(contains(strings(get(kv.second, "secrets")), "ember_token"));
    auto env = environment(kv.second);
    EXPECT_EQ(env["EMBER_TOKEN_FILE"], "/run/secrets/ember_token");
    EXPECT_TRUE(contains(strings(get(kv.second, "volumes")), "ember-data:/var/lib/ember"))
        << "every service mounts the data volume at the same path";
    auto test = strings(get(kv.second, "healthcheck")["test"]);
    ASSERT_FALSE(test.empty());
    EXPECT_EQ(test.back(), name == "scheduler" ? "scheduler" : "worker");
  }
  // The scheduler listens beyond loopback, so its token is what keeps strangers out.
  EXPECT_EQ(environment(service("scheduler"))["EMBER_LISTEN"], "0.0.0.0:4242");
}

TEST_F(compose_file, SetsOnlyVariablesEmberReads) {
  auto known = variables_ember_reads();
  ASSERT_FALSE(known.empty());
  for (const auto& kv : _doc["services"]) {
    for (const auto& [name, value] : environment(kv.second)) {
      if (name.rfind("EMBER_", 0) == 0) {
        EXPECT_TRUE(known.count(name)) << kv.first.as<std::string>() << ": " << name;
      }
    }
  }
}

// ---- Kubernetes
// -----------------------------------------------------------------------------------

class k8s_manifests : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& e : fs::directory_iterator(docker_dir() / "k8s")) {
      if (e.path().extension() != ".yaml") continue;
      ++_files;
      for (const auto& doc : YAML::LoadAllFromFile(e.path().string())) {
        if (!doc || doc.IsNull()) continue;
        ASSERT_TRUE(doc["apiVersion"] && doc["kind"] && doc["metadata"]["name"]) << e.path();
        EXPECT_FALSE(doc["metadata"]["namespace"])
            << e.path() << ": the manifests are namespace-free (kubectl apply -n NAMESPACE)";
        _by_kind[doc["kind"].as<std::string>()].push_back(doc);
      }
    }
  }
  YAML::Node one(const std::string& kind) {
    EXPECT_EQ(_by_kind[kind].size(), kind == "Service" ? 2u : 1u) << kind;
    return _by_kind[kind].empty() ? YAML::Node(YAML::NodeType::Undefined) : _by_kind[kind].front();
  }
  YAML::Node service_named(const std::string& name) {
    for (const auto& s : _by_kind["Service"])
      if (s["metadata"]["name"].as<std::string>() == name) return s;
    return YAML::Node(YAML::NodeType::Undefined);
  }
  static std::map<std::string, YAML::Node> env_of(const YAML::Node& container) {
    std::map<std::string, YAML::Node> env;
    for (const auto& e : container["env"]) env[e["name"].as<std::string>()] = YAML::Node(e);
    return env;
  }
  // The pod runs as a non-root user, mounts the token Secret as a file that EMBER_TOKEN_FILE
  // names, serves its metrics endpoint on a container port named `metrics`, and probes the
  // container both ways with an httpGet of /healthz there (the route that needs no token).
  void check_pod(const YAML::Node& workload, const std::string& role) {
    SCOPED_TRACE(role);
    auto pod = workload["spec"]["template"]["spec"];
    ASSERT_TRUE(pod.IsMap());
    EXPECT_TRUE(pod["securityContext"]["runAsNonRoot"].as<bool>());
    EXPECT_NE(pod["securityContext"]["runAsUser"].as<int>(), 0);
    auto container = pod["containers"][0];
    ASSERT_TRUE(container.IsMap());
    EXPECT_EQ(strings(container["args"]), std::vector<std::string>{role});
    int metrics_port = 0;
    for (const auto& p : container["ports"])
      if (p["name"] && p["name"].as<std::string>() == "metrics")
        metrics_port = p["containerPort"].as<int>();
    ASSERT_GT(metrics_port, 0) << "no container port named metrics";
    for (const auto* probe : {"readinessProbe", "livenessProbe"}) {
      auto get = container[probe]["httpGet"];
      ASSERT_TRUE(get.IsMap()) << probe << " is not an httpGet";
      EXPECT_EQ(get["path"].as<std::string>(), "/healthz") << probe;
      EXPECT_EQ(get["port"].as<std::string>(), "metrics") << probe;
    }
    auto metrics_env = env_of(
        container)[role == "scheduler" ? "EMBER_METRICS_LISTEN" : "EMBER_WORKER_METRICS_LISTEN"];
    ASSERT_TRUE(metrics_env.IsMap()) << "the metrics endpoint is not configured";
    // Reachable by the kubelet at the pod's address, on the port the probes name.
    EXPECT_EQ(metrics_env["value"].as<std::string>(), "0.0.0.0:" + std::to_string(metrics_port));
    std::string token_volume;
    for (const auto& v : pod["volumes"])
      if (v["secret"] && v["secret"]["secretName"].as<std::string>() == "ember-token")
        token_volume = v["name"].as<std::string>();
    ASSERT_FALSE(token_volume.empty()) << "the token Secret is not a volume";
    std::string mount_path;
    for (const auto& m : container["volumeMounts"])
      if (m["name"].as<std::string>() == token_volume)
        mount_path = m["mountPath"].as<std::string>();
    ASSERT_FALSE(mount_path.empty());
    auto env = env_of(container);
    ASSERT_TRUE(env.count("EMBER_TOKEN_FILE"));
    EXPECT_EQ(env["EMBER_TOKEN_FILE"]["value"].as<std::string>(), mount_path + "/token");
    auto known = variables_ember_reads();
    for (const auto& [name, e] : env) {
      if (name.rfind("EMBER_", 0) == 0) {
        EXPECT_TRUE(known.count(name)) << name;
      }
    }
  }
  int _files = 0;
  std::map<std::string, std::vector<YAML::Node>> _by_kind;
};

TEST_F(k8s_manifests, TheSchedulerIsADeploymentBehindAService) {
  ASSERT_GT(_files, 0);
  auto deployment = one("Deployment");
  ASSERT_TRUE(deployment.IsMap());
  EXPECT_EQ(deployment["spec"]["replicas"].as<int>(), 1);
  check_pod(deployment, "scheduler");
  auto service = service_named("ember-scheduler");
  ASSERT_TRUE(service.IsMap()) << "no Service ember-scheduler";
  auto labels = deployment["spec"]["template"]["metadata"]["labels"];
  for (const auto& kv : service["spec"]["selector"]) {
    EXPECT_EQ(labels[kv.first.as<std::string>()].as<std::string>(), kv.second.as<std::string>());
  }
  EXPECT_EQ(service["spec"]["ports"][0]["port"].as<int>(), 4242);
  bool metrics = false;
  for (const auto& p : service["spec"]["ports"])
    metrics |= p["targetPort"] && p["targetPort"].as<std::string>() == "metrics";
  EXPECT_TRUE(metrics) << "the Service does not expose the metrics port";
}

TEST_F(k8s_manifests, WorkersAreAStatefulSetWithOneGpuEach) {
  auto workers = one("StatefulSet");
  ASSERT_TRUE(workers.IsMap());
  check_pod(workers, "worker");
  auto container = workers["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(container["resources"]["limits"]["nvidia.com/gpu"].as<int>(), 1);
  auto env = env_of(container);
  EXPECT_EQ(env["EMBER_SCHEDULER"]["value"].as<std::string>(), "ember-scheduler:4242");
  EXPECT_EQ(env["EMBER_WORKER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>(),
            "metadata.name");
  EXPECT_TRUE(service_named(workers["spec"]["serviceName"].as<std::string>()).IsMap());
}

TEST_F(k8s_manifests, TheTokenIsASecret) {
  auto secret = one("Secret");
  ASSERT_TRUE(secret.IsMap());
  EXPECT_EQ(secret["metadata"]["name"].as<std::string>(), "ember-token");
  EXPECT_TRUE(secret["stringData"]["token"] || secret["data"]["token"]);
}

// ---- Dockerfiles and scripts
// ----------------------------------------------------------------------

TEST(dockerfiles, AreMultiStageNonRootWithAHealthCheck) {
  for (const auto* name : {"Dockerfile.cpu", "Dockerfile.cuda"}) {
    SCOPED_TRACE(name);
    auto text = read_text(docker_dir() / name);
    ASSERT_FALSE(text.empty());
    std::regex from(R"(^FROM\s+(\S+)\s+AS\s+(\S+)\s*$)", std::regex::multiline | std::regex::icase);
    std::vector<std::string> bases;
    for (std::sregex_iterator it(text.begin(), text.end(), from), end; it != end; ++it)
      bases.push_back((*it)[1]);
    ASSERT_GE(bases.size(), 2u) << "multi-stage: FROM ... AS NAME";
    if (std::string(name) == "Dockerfile.cuda") {
      EXPECT_NE(bases.front().find("nvidia/cuda"), std::string::npos);
      EXPECT_NE(bases.front().find("devel"), std::string::npos);
      EXPECT_NE(bases.back().find("runtime"), std::string::npos);
      EXPECT_NE(text.find("--with-cuda"), std::string::npos) << "a CUDA-aware UCX";
    }
    // The last stage is the image: its last USER must not be root.
    auto last_stage = text.substr(text.rfind("\nFROM "));
    std::smatch user;
    std::string last_user;
    for (auto it = last_stage.cbegin();
         std::regex_search(it, last_stage.cend(), user, std::regex(R"(\nUSER\s+(\S+))"));
         it = user.suffix().first)
      last_user = user[1];
    EXPECT_FALSE(last_user.empty()) << "no USER in the runtime stage";
    EXPECT_NE(last_user, "root");
    EXPECT_NE(last_user, "0");
    EXPECT_NE(last_stage.find("\nHEALTHCHECK "), std::string::npos);
    EXPECT_NE(last_stage.find("\nENTRYPOINT [\"/usr/local/bin/entrypoint.sh\"]"),
              std::string::npos);
    EXPECT_NE(last_stage.find("COPY docker/entrypoint.sh"), std::string::npos);
  }
}

TEST(deploy_scripts, ParseAndTheEntrypointIsExecutable) {
  for (const auto& script :
       {docker_dir() / "entrypoint.sh", docker_dir() / "slurm" / "ember.sbatch"}) {
    SCOPED_TRACE(script.string());
    auto [status, out] = shell_output("bash -n " + script.string() + " 2>&1");
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(read_text(script).rfind("#!/usr/bin/env bash\n", 0), 0u);
    struct stat st {};
    ASSERT_EQ(::stat(script.c_str(), &st), 0);
    EXPECT_TRUE(st.st_mode & S_IXUSR) << "not executable";
  }
  auto sbatch = read_text(docker_dir() / "slurm" / "ember.sbatch");
  EXPECT_NE(sbatch.find("--gpu"), std::string::npos);
  EXPECT_NE(sbatch.find("SLURM_LOCALID"), std::string::npos);
  EXPECT_NE(sbatch.find("entrypoint.sh"), std::string::npos);
}

TEST(deploy_docs, BothReadmesListEveryVariable) {
  auto known = variables_ember_reads();
  ASSERT_GE(known.size(), 15u);
  auto docker_readme = read_text(docker_dir() / "README.md");
  auto readme = read_text(ember::test::source_dir() / "README.md");
  auto config = readme.substr(std::min(readme.find("## Configuration"), readme.size()));
  config = config.substr(0, std::min(config.find("\n## ", 1), config.size()));
  ASSERT_FALSE(config.empty()) << "README.md has no Configuration section";
  for (const auto& name : known) {
    EXPECT_NE(docker_readme.find("`" + name + "`"), std::string::npos)
        << "docker/README.md: " << name;
    EXPECT_NE(config.find("`" + name + "`"), std::string::npos) << "README.md: " << name;
  }
}

}  // namespace
