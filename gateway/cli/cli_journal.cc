// `storegw journal export`, `storegw journal verify` and `storegw journal
// backup`: offline tools that read a journal through storage's read-only
// paths, so all three work while a daemon writes the same journal.
//
// Exit codes: 0 done, 1 failed (stderr says why, once), 2 usage.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include <google/protobuf/util/json_util.h>

#include "storegw/cli/cli.h"
#include "storegw/config/config.h"
#include "storegw/monitor/progress.h"
#include "storegw/storage/journal.h"

namespace storegw::gateway {
namespace {

struct JournalFlags {
  std::string data_dir;
  std::string config;
  std::string output;
  bool force = false;
};

// --data-dir wins; else the config's gateway.data_dir; else the default.
Result<std::filesystem::path> ChosenDataDir(const JournalFlags& f) {
  if (!f.data_dir.empty()) return std::filesystem::path(f.data_dir);
  if (!f.config.empty()) {
    auto cfg = LoadConfigFile(f.config);
    if (!cfg.ok()) return cfg.status();
    return std::filesystem::path(cfg->gateway.data_dir);
  }
  return std::filesystem::path(Config{}.gateway.data_dir);
}

// ChosenDataDir, which must hold a journal.db.
Result<std::filesystem::path> DataDir(const JournalFlags& f, const char* what) {
  auto chosen = ChosenDataDir(f);
  if (!chosen.ok()) return chosen.status();
  const std::filesystem::path dir = *chosen;
  std::error_code ec;
  if (!std::filesystem::exists(dir / "journal.db", ec)) {
    return Status::NotFound(std::string(what) + ": no journal at " + (dir / "journal.db").string());
  }
  return dir;
}

// The reason of a failed `journal <command>`, said once: storage's
// messages may already start with "journal verify: " or "journal: " and
// name the file, so neither is repeated ("journal verify: FAILED: PATH:
// integrity_check: ..."). `file` is empty when there is no file to name.
std::string Reason(std::string_view command, const std::string& file, std::string message) {
  for (std::string prefix : {std::string(command) + ": ", std::string("journal: ")}) {
    if (message.rfind(prefix, 0) == 0) {
      message.erase(0, prefix.size());
      break;
    }
  }
  if (file.empty() || message.find(file) != std::string::npos) return message;
  return file + ": " + message;
}

int Export(const JournalFlags& f) {
  auto dir = DataDir(f, "journal export");
  if (!dir.ok()) {
    std::fprintf(stderr, "journal export: %s\n",
                 Reason("journal export", "", dir.status().message()).c_str());
    return kExitFailure;
  }
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (!f.output.empty()) {
    file.open(f.output, std::ios::binary | std::ios::trunc);
    if (!file) {
      std::fprintf(stderr, "journal export: cannot write %s: %s\n", f.output.c_str(),
                   std::strerror(errno));
      return kExitFailure;
    }
    out = &file;
  }
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  uint64_t count = 0, first = 0, last = 0;
  std::string line;
  // A bar on stderr when it is a terminal; stdout carries the JSON lines.
  TtyProgress progress("journal export");
  auto on_progress = [&progress](uint64_t done, uint64_t total) { progress.Update(done, total); };
  Status s = storage::ExportJournal(
      *dir,
      [&](const storage::v1::JournaledEvent& e) -> Status {
        line.clear();
        auto st = google::protobuf::util::MessageToJsonString(e, &line, opts);
        if (!st.ok()) {
          return Status::Corruption("seq " + std::to_string(e.seq()) +
                                    ": cannot encode as JSON: " + std::string(st.message()));
        }
        line += '\n';
        out->write(line.data(), static_cast<std::streamsize>(line.size()));
        if (!*out) return Status::IoError("writing the output failed (disk full?)");
        if (count++ == 0) first = e.seq();
        last = e.seq();
        return Status::Ok();
      },
      on_progress);
  progress.Finish();
  out->flush();
  if (s.ok() && !*out) s = Status::IoError("writing the output failed (disk full?)");
  if (!s.ok()) {
    std::fprintf(stderr, "journal export: %s\n",
                 Reason("journal export", "", s.message()).c_str());
    return kExitFailure;
  }
  std::fprintf(stderr, "journal export: %llu events (seq %llu..%llu) from %s to %s\n",
               static_cast<unsigned long long>(count), static_cast<unsigned long long>(first),
               static_cast<unsigned long long>(last), dir->c_str(),
               f.output.empty() ? "stdout" : f.output.c_str());
  return kExitOk;
}

int Verify(const JournalFlags& f) {
  auto dir = DataDir(f, "journal verify");
  if (!dir.ok()) {
    std::fprintf(stderr, "journal verify: FAILED: %s\n",
                 Reason("journal verify", "", dir.status().message()).c_str());
    return kExitFailure;
  }
  TtyProgress progress("journal verify");
  auto r = storage::VerifyJournal(
      *dir, [&progress](uint64_t done, uint64_t total) { progress.Update(done, total); });
  progress.Finish();
  if (!r.ok()) {
    std::fprintf(stderr, "journal verify: FAILED: %s\n",
                 Reason("journal verify", (*dir / "journal.db").string(), r.status().message())
                     .c_str());
    return kExitFailure;
  }
  std::printf(
      "journal verify: ok: %s: %llu events (seq %llu..%llu, watermark %llu), %llu skus, %s\n",
      (*dir / "journal.db").c_str(), static_cast<unsigned long long>(r->events),
      static_cast<unsigned long long>(r->first_seq), static_cast<unsigned long long>(r->last_seq),
      static_cast<unsigned long long>(r->watermark), static_cast<unsigned long long>(r->skus),
      r->full_replay ? "ledger recomputed from every event"
                     : "ledger checked against the retained events (older ones pruned)");
  return kExitOk;
}

int Backup(const JournalFlags& f) {
  auto dir = ChosenDataDir(f);
  if (!dir.ok()) {
    std::fprintf(stderr, "journal backup: FAILED: %s\n",
                 Reason("journal backup", "", dir.status().message()).c_str());
    return kExitFailure;
  }
  // Two bars on a terminal: the pages copied, then the copy's verification.
  TtyProgress copying("journal backup", stderr, false, "pages");
  TtyProgress verifying("journal backup: verify");
  storage::BackupOptions opts;
  opts.overwrite = f.force;
  opts.copy_progress = [&copying](uint64_t done, uint64_t total) {
    copying.Update(done, total);
  };
  opts.verify_progress = [&copying, &verifying](uint64_t done, uint64_t total) {
    copying.Finish();
    verifying.Update(done, total);
  };
  auto r = storage::BackupJournal(*dir, f.output, opts);
  copying.Finish();
  verifying.Finish();
  if (!r.ok()) {
    std::fprintf(stderr, "journal backup: FAILED: %s\n",
                 Reason("journal backup", "", r.status().message()).c_str());
    return kExitFailure;
  }
  const storage::VerifyReport& v = r->verify;
  std::printf(
      "journal backup: ok: %s: %llu events (seq %llu..%llu, watermark %llu), epoch %llu, store "
      "'%s' gateway '%s', %llu bytes, verified\n",
      f.output.c_str(), static_cast<unsigned long long>(v.events),
      static_cast<unsigned long long>(v.first_seq), static_cast<unsigned long long>(v.last_seq),
      static_cast<unsigned long long>(v.watermark), static_cast<unsigned long long>(v.epoch),
      v.store_id.c_str(), v.gateway_id.c_str(), static_cast<unsigned long long>(r->bytes));
  return kExitOk;
}

}  // namespace

void AddJournalCommand(CLI::App& app, int* exit_code) {
  auto* journal = app.add_subcommand(
      "journal", "Read, check or copy a journal (works while the daemon runs)");
  journal->require_subcommand(1);

  auto ef = std::make_shared<JournalFlags>();
  auto* exp = journal->add_subcommand(
      "export", "Write every event as JSON lines (storegw.v1.JournaledEvent), in seq order");
  exp->add_option("--data-dir,-d", ef->data_dir, "Directory of journal.db");
  exp->add_option("--config,-c", ef->config, "Take the data dir from this config file");
  exp->add_option("--output,-o", ef->output, "Write here instead of stdout");
  exp->callback([ef, exit_code] { *exit_code = Export(*ef); });

  auto vf = std::make_shared<JournalFlags>();
  auto* ver = journal->add_subcommand(
      "verify", "Check integrity, seq density and the stock ledger against the events");
  ver->add_option("--data-dir,-d", vf->data_dir, "Directory of journal.db");
  ver->add_option("--config,-c", vf->config, "Take the data dir from this config file");
  ver->callback([vf, exit_code] { *exit_code = Verify(*vf); });

  auto bf = std::make_shared<JournalFlags>();
  auto* bak = journal->add_subcommand(
      "backup",
      "Copy the journal (also while the daemon writes it) to a new file, verified before it is "
      "put in place");
  bak->add_option("--data-dir,-d", bf->data_dir, "Directory of journal.db");
  bak->add_option("--config,-c", bf->config, "Take the data dir from this config file");
  bak->add_option("--output,-o", bf->output, "The backup file to write (must not exist)")
      ->required();
  bak->add_flag("--force,-f", bf->force, "Replace --output when it exists");
  bak->callback([bf, exit_code] { *exit_code = Backup(*bf); });
}

}  // namespace storegw::gateway
