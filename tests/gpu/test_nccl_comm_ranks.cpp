// The NCCL communicator across ranks, one process per GPU. Run plainly, this executable starts
// itself under `mpirun -np 2` (every operation across ranks: reductions, started all-reduces,
// broadcast, gathers, sends and receives both ways at once, splits) and runs data_parallel over
// NCCL against single. Exits 77 (skipped) with fewer than two GPUs, without mpirun or NCCL.
#define DOCTEST_CONFIG_IMPLEMENT
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "comm/job.hpp"
#include "comm/nccl/nccl_loader.hpp"
#include "gpu_support.hpp"
#include "run_files.hpp"

namespace rt = graft::runtime;
namespace fs = std::filesystem;
using graft::gpu_test::Gpu;
using graft::test::Tensor;

using graft::gpu_test::check_equal;
using graft::gpu_test::filled;

namespace {

std::unique_ptr<rt::Job> g_job;
std::unique_ptr<rt::Communicator> g_comm;  // NCCL over the job's world
std::string g_mpirun;                      // "mpirun [flags]"

rt::Communicator& comm() { return *g_comm; }

struct CommandOutput {
  int exit_code;
  std::string output;
};
CommandOutput shell(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed: " + command};
  std::string output;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

// From nvidia-smi: the test links no CUDA runtime of its own to ask.
int visible_gpus() {
  std::istringstream lines(shell("nvidia-smi -L").output);
  int count = 0;
  for (std::string line; std::getline(lines, line);) count += line.rfind("GPU ", 0) == 0;
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible && *visible)
    count = std::min(count, int(std::count(visible, visible + std::strlen(visible), ',')) + 1);
  return count;
}

// "mpirun [flags]" or "" when there is none; Open MPI must be told it may run as root.
std::string mpirun_command() {
  const CommandOutput found = shell("command -v mpirun");
  if (found.exit_code != 0 || found.output.empty()) return "";
  std::string line = found.output.substr(0, found.output.find('\n'));
  if (shell(line + " --version").output.find("Open MPI") != std::string::npos)
    line += " --oversubscribe --allow-run-as-root";
  return line;
}

std::string graft_executable() {
  const char* moved = std::getenv("GRAFT_TEST_EXECUTABLE");
  return moved && *moved ? moved : GRAFT_EXECUTABLE;
}

}  // namespace

TEST_SUITE_BEGIN("launch");

TEST_CASE("on two GPUs under mpirun: every operation across ranks") {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  REQUIRE(!ec);
  const CommandOutput run = shell("timeout -k 5 300 " + g_mpirun + " -np 2 " + self.string());
  INFO(run.output);
  CHECK(run.exit_code == 0);
}

TEST_CASE("data_parallel over NCCL on two GPUs trains as single does on one") {
  const fs::path dir = graft::test::temp_dir("gpu_nccl_data_parallel");
  const fs::path config = dir / "config.toml";
  std::ofstream(config) << "[run]\nname = \"r\"\nseed = 5\ndevice = \"cuda\"\nsteps = 8\n"
                           "log_every = 1\nprogress = \"none\"\n"
                           "[data]\nreader = \"synthetic\"\nkind = \"blobs\"\nfeatures = 32\n"
                           "classes = 4\nsamples = 512\ntest_samples = 64\nbatch_size = 64\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 64\n"
                           "activation = \"relu\"\n"
                           "[[model.layers]]\ntype = \"linear\"\nunits = 4\n"
                           "[loss]\ntype = \"cross_entropy\"\n[optimizer]\ntype = \"sgd\"\n"
                           "lr = 0.1\n";
  auto train = [&](const std::string& launcher, const std::string& name, const char* strategy) {
    const CommandOutput run = shell(launcher + graft_executable() + " train " + config.string() +
                                    " --set run.output_dir=" + (dir / name).string() +
                                    " --set parallel.strategy=" + strategy);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    return graft::test::metric_events(dir / name / "r" / "metrics.jsonl", "train");
  };
  const auto single = train("", "single", "single");
  const auto parallel = train("timeout -k 5 300 " + g_mpirun + " -np 2 ", "dp", "data_parallel");
  REQUIRE(single.size() == 8);
  REQUIRE(parallel.size() == single.size());
  // The same global batches; the sums are only grouped differently (two half batches, then
  // NCCL's average), so the losses agree to float32 rounding over 8 steps.
  for (size_t i = 0; i < single.size(); ++i) {
    const double a = single[i]["loss"].get<double>(), b = parallel[i]["loss"].get<double>();
    CAPTURE(i);
    CHECK(std::fabs(a - b) <= 1e-4 * std::max(1.0, std::fabs(a)));
  }
}

TEST_SUITE_END();

// Run by the first test above: one process per GPU.
TEST_SUITE_BEGIN("ranks");

TEST_CASE("all_reduce and started all-reduces across ranks: sums and averages") {
  const int r = comm().rank(), n = comm().size();
  auto value = [](int rank, int64_t i) { return float((rank + 1) * (i + 1)); };
  const float ranks_sum = float(n * (n + 1)) / 2.0f;  // exact in float32
  for (graft_reduce_op op : {GRAFT_REDUCE_SUM, GRAFT_REDUCE_AVG}) {
    const float scale = op == GRAFT_REDUCE_AVG ? ranks_sum / float(n) : ranks_sum;
    Tensor want({1000});
    for (int64_t i = 0; i < 1000; ++i) want.f()[i] = scale * float(i + 1);
    Gpu t(filled(1000, value, r));
    comm().all_reduce(t.tensor, op, "values");
    check_equal(t.host(), want);
    Gpu first(filled(1000, value, r)), second(filled(1000, value, r));
    auto a = comm().all_reduce_start(first.tensor, op, "bucket 0");
    auto b = comm().all_reduce_start(second.tensor, op, "bucket 1");
    b->wait();
    a->wait();
    check_equal(first.host(), want);
    check_equal(second.host(), want);
  }
}

TEST_CASE("broadcast from every root, all_gather and reduce_scatter") {
  const int r = comm().rank(), n = comm().size();
  for (int root = 0; root < n; ++root) {
    Gpu t(filled(
        300, [](int rank, int64_t i) { return float(rank * 1000 + i); }, r));
    comm().broadcast(t.tensor, root, "weights");
    check_equal(t.host(),
                filled(
                    300, [](int rank, int64_t i) { return float(rank * 1000 + i); }, root));
  }
  Gpu in(filled(
      3, [](int rank, int64_t i) { return float(rank * 10 + i); }, r));
  Gpu out(Tensor({3 * n}));
  comm().all_gather(in.tensor, out.tensor, "parts");
  // Part k / 3 came from rank k / 3: its values k / 3 * 10 + 0, 1, 2.
  check_equal(out.host(), filled(
                              3 * n, [](int, int64_t k) { return float(k / 3 * 10 + k % 3); }, 0));
  Gpu whole(filled(
      2 * n, [](int rank, int64_t j) { return float((rank + 1) * (j + 1)); }, r));
  Gpu part(Tensor({2}));
  comm().reduce_scatter(whole.tensor, part.tensor, GRAFT_REDUCE_SUM, "gradient parts");
  const float ranks_sum = float(n * (n + 1)) / 2.0f;
  Tensor want({2});
  for (int i = 0; i < 2; ++i) want.f()[i] = ranks_sum * float(2 * r + i + 1);
  check_equal(part.host(), want);
}

TEST_CASE("pairs send and receive both ways at once (1F1B), beyond NCCL's buffers") {
  const int r = comm().rank(), n = comm().size(), partner = r ^ 1;
  if (partner >= n) return;                      // the last of an odd world
  constexpr int64_t kFloats = int64_t(8) << 20;  // 32 MiB each way
  auto value = [](int rank, int64_t i) { return float(rank * 7 + i % 1000); };
  Gpu mine(filled(kFloats, value, r)), theirs(Tensor({kFloats}));
  // Both ranks send first, then receive: a single queue would have each send wait for a
  // receive queued behind the other's send.
  std::unique_ptr<rt::CommRequest> sent = comm().send_start(mine.tensor, partner, 1, "activations");
  comm().recv(theirs.tensor, partner, 2, "gradients");
  sent->wait();
  check_equal(theirs.host(), filled(kFloats, value, partner));
  Gpu again(Tensor({kFloats}));
  std::unique_ptr<rt::CommRequest> received = comm().recv_start(again.tensor, partner, 3, "next");
  comm().send(mine.tensor, partner, 3, "next");
  received->wait();
  check_equal(again.host(), filled(kFloats, value, partner));
}

TEST_CASE("split: by parity, and a copy of the world in reverse order") {
  const int r = comm().rank(), n = comm().size();
  rt::Communicator& same_parity = comm().split(r % 2, r);
  Gpu t(filled(
      16, [](int rank, int64_t) { return float(rank + 1); }, r));
  same_parity.all_reduce(t.tensor, GRAFT_REDUCE_SUM, "parity");
  Tensor want({16});
  float sum = 0;
  for (int q = r % 2; q < n; q += 2) sum += float(q + 1);
  for (int i = 0; i < 16; ++i) want.f()[i] = sum;
  check_equal(t.host(), want);
  rt::Communicator& reversed = comm().split(0, n - r);
  CHECK(reversed.rank() == n - 1 - r);
  auto own_rank = [](int rank, int64_t) { return float(rank); };
  Gpu root(filled(4, own_rank, r));
  reversed.broadcast(root.tensor, 0, "from the last world rank");
  check_equal(root.host(), filled(4, own_rank, n - 1));
}

TEST_CASE("host tensors and all_reduce_f64 go to MPI") {
  const int r = comm().rank(), n = comm().size();
  double values[1] = {double(r)};
  comm().all_reduce_f64(values, 1, GRAFT_REDUCE_SUM, "rank sum");
  CHECK(values[0] == n * (n - 1) / 2.0);
  Tensor host = filled(
      3, [](int rank, int64_t) { return float(rank); }, r);
  comm().all_reduce(*host.get(), GRAFT_REDUCE_SUM, "host tensor");
  CHECK(host.f()[0] == float(n * (n - 1) / 2));
}

namespace {

int run_suite(int argc, char** argv, const char* suite) {
  doctest::Context context(argc, argv);
  context.addFilter("test-suite", suite);
  const int code = context.run();
  g_comm.reset();  // before the job whose communicator it wraps
  return code;
}

// One rank of the job the "launch" suite starts: the GPU of its place on the node.
int rank_main(int argc, char** argv) {
  try {
    g_job = rt::start_job(120);
  } catch (const std::exception& e) {  // no MPI module where this executable looks
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  try {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    rt::cuda::Options device;
    device.device_index = local ? std::atoi(local) : 0;
    rt::start_cuda(device);
    rt::NcclOptions options;
    options.device_index = device.device_index;
    options.compute_stream = rt::cuda_device()->stream();
    options.deterministic = true;
    options.timeout_s = 120;
    g_comm = rt::start_nccl(g_job->world(), options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", g_job->world().rank(), e.what());
    const int code = g_job->fail(1);  // returns when every rank failed alike
    g_job.reset();                    // then the job ends as usual
    return code;
  }
  const int code = run_suite(argc, argv, "ranks");
  g_job.reset();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (rt::launched_by_mpi()) return rank_main(argc, argv);
  std::string why_not;
  if (!rt::nccl_built())
    why_not = "this build has no NCCL communicator (NCCL was not found when it was configured)";
  else if (visible_gpus() < 2)
    why_not = "fewer than 2 GPUs are visible";
  else if ((g_mpirun = mpirun_command()).empty())
    why_not = "mpirun is not installed";
  if (!why_not.empty()) {
    std::printf("skipped: %s\n", why_not.c_str());
    return 77;
  }
  return run_suite(argc, argv, "launch");
}
