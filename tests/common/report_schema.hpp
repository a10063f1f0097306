#pragma once
// Checks benchmark reports against bench/report.schema.json with an independent validator:
// Python's jsonschema (Debian's python3-jsonschema, installed by scripts/setup), Draft 2020-12.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "common/paths.hpp"

namespace ember::test {

struct schema_check {
  bool valid = false;
  std::string errors;  ///< the validator's messages, one per violation, with the JSON path
};

/// Validates the report at `report` against the repository's schema.
inline schema_check validate_report(const std::filesystem::path& report) {
  // Debian's python3 first: it is the one scripts/setup gave jsonschema to.
  std::string python = std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  auto schema = source_dir() / "bench" / "report.schema.json";
  std::string script =
      "import json, sys\n"
      "from jsonschema import Draft202012Validator\n"
      "schema = json.load(open(sys.argv[1]))\n"
      "Draft202012Validator.check_schema(schema)\n"
      "report = json.load(open(sys.argv[2]))\n"
      "errors = sorted(Draft202012Validator(schema).iter_errors(report), key=lambda e: "
      "e.json_path)\n"
      "for e in errors: print(e.json_path + ': ' + e.message[:300])\n"
      "sys.exit(1 if errors else 0)\n";
  auto script_path = std::filesystem::temp_directory_path() /
                     ("ember_validate_report_" + std::to_string(::getpid()) + ".py");
  if (FILE* f = std::fopen(script_path.c_str(), "w")) {
    std::fputs(script.c_str(), f);
    std::fclose(f);
  }
  std::string command = python + " " + script_path.string() + " '" + schema.string() + "' '" +
                        report.string() + "' 2>&1";
  schema_check result;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p) != nullptr) result.errors += buf;
    result.valid = ::pclose(p) == 0;
  } else {
    result.errors = "cannot run " + python;
  }
  std::filesystem::remove(script_path);
  return result;
}

}  // namespace ember::test
