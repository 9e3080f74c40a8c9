// metrics.jsonl writer, the console progress display, and a training run's log over both.
#include "train/metrics.hpp"

#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.hpp"
#include "generate/generator.hpp"
#include "session/session.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

MetricsLog::MetricsLog(const std::filesystem::path& file, bool append)
    : out_(file, append ? std::ios::app : std::ios::trunc) {
  if (!out_) throw Failure("cannot write " + file.string());
}

void MetricsLog::train(const TrainRecord& r) {
  if (!out_.is_open()) return;
  nlohmann::ordered_json j = {{"event", "train"},    {"step", r.step},
                              {"epoch", r.epoch},    {"loss", r.loss},
                              {"lr", r.lr},          {"samples_per_s", r.samples_per_s},
                              {"seconds", r.seconds}};
  out_ << j.dump() << '\n';
  out_.flush();
}

void MetricsLog::eval(const EvalRecord& r) {
  if (!out_.is_open()) return;
  nlohmann::ordered_json j = {{"event", "eval"},
                              {"split", r.split},
                              {"step", r.step},
                              {"epoch", r.epoch},
                              {"loss", r.loss}};
  for (const auto& [name, value] : r.metrics) j[name] = value;
  out_ << j.dump() << '\n';
  out_.flush();
}

void MetricsLog::strategy(const StrategyRecord& r) {
  if (!out_.is_open()) return;
  nlohmann::ordered_json j = {
      {"event", "strategy"}, {"strategy", r.strategy}, {"step", r.step}, {"epoch", r.epoch}};
  for (const auto& [name, value] : r.values) j[name] = value;
  out_ << j.dump() << '\n';
  out_.flush();
}

Progress::Progress(const std::string& mode, int64_t total_steps)
    : total_(total_steps), start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  quiet_ = mode == "none";
  bar_ = mode == "bar" || (mode == "auto" && isatty(STDERR_FILENO));
}

void Progress::step(int64_t step, int64_t epoch, double loss, double samples_per_s) {
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  if (!bar_) {
    std::fprintf(stderr, "step %lld epoch %lld loss %.4f %.0f samples/s %.1fs\n",
                 static_cast<long long>(step), static_cast<long long>(epoch), loss, samples_per_s,
                 elapsed);
    return;
  }
  if (step < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const int width = 30;
  double fraction = total_ > 0 ? double(step) / double(total_) : 0.0;
  int filled = static_cast<int>(fraction * width);
  double left = fraction > 0 ? elapsed / fraction - elapsed : 0.0;
  std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld epoch %lld loss %.4f %.0f samples/s %.0fs left ",
               filled, "##############################", width - filled, "",
               static_cast<long long>(step), static_cast<long long>(total_),
               static_cast<long long>(epoch), loss, samples_per_s, left);
  std::fflush(stderr);
}

void Progress::line(const std::string& text) {
  if (quiet_) return;
  if (bar_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", text.c_str());
}

void Progress::finish() {
  if (bar_ && !quiet_) std::fprintf(stderr, "\n");
}

RunLog::RunLog(const Session& session, bool resumed, int64_t total_steps)
    : lead_(session.rank == 0 && session.write_outputs),
      progress_(lead_ ? session.config.run.progress : "none", total_steps),
      log_every_(session.config.run.log_every),
      total_steps_(total_steps) {
  if (!lead_) return;
  std::filesystem::create_directories(session.run_dir);
  write_file_atomically(session.run_dir / "config.toml", session.resolved_config());
  // Text: the ids' characters, which generation checks its corpus against.
  if (session.train_set && session.train_set->has_text())
    write_file_atomically(session.run_dir / "vocabulary.json", vocabulary_json(*session.train_set));
  metrics_ = MetricsLog(session.run_dir / "metrics.jsonl", resumed);
}

void RunLog::step(int64_t step, int64_t epoch, double loss, int64_t rows, double lr) {
  window_loss_ += loss;
  window_rows_ += rows;
  ++window_steps_;
  if (step % log_every_ != 0 && step != total_steps_) return;
  const double elapsed = std::chrono::duration<double>(Clock::now() - window_start_).count();
  const double rate = elapsed > 0 ? double(window_rows_) / elapsed : 0.0;
  const double mean_loss = window_loss_ / double(window_steps_);
  metrics_.train({step, epoch, mean_loss, lr, rate, seconds()});
  progress_.step(step, epoch, mean_loss, rate);
  window_start_ = Clock::now();
  window_loss_ = 0.0;
  window_rows_ = 0;
  window_steps_ = 0;
}

void RunLog::eval(const EvalRecord& r) { metrics_.eval(r); }

void RunLog::strategy(const std::string& name, int64_t step, int64_t epoch,
                      const graft_strategy_report& report) {
  if (!lead_) return;  // other ranks' reports may point to nothing
  if (report.message) progress_.line(report.message);
  StrategyRecord record{name, step, epoch, {}};
  for (int64_t i = 0; i < report.n_values; ++i)
    record.values.emplace_back(report.names[i], report.values[i]);
  if (!record.values.empty()) metrics_.strategy(record);
}

void RunLog::line(const std::string& text) { progress_.line(text); }

void RunLog::say(const std::string& text) {
  if (lead_ && !text.empty()) std::fprintf(stderr, "%s\n", text.c_str());
}

void RunLog::finish() { progress_.finish(); }

double RunLog::seconds() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

}  // namespace graft::runtime
