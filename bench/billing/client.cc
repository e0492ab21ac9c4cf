// The gRPC side's load for bench/billing/run.py, in C++: what client.py does,
// for a fraction of its CPU. pgbench drives the other side from C; a Python
// client would spend more of the machine's two cores than the server it
// measures. Same calls, same output (see client.py):
//
//   client TARGET CLIENTS WARMUP SECONDS USERS AMOUNT CAPTURE TRACE_ID
//
// Each client has a channel (connection) of its own and one pair in flight:
// Reserve, then Capture of the hold it got. One thread drives them all
// through a completion queue.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "billing/v1/billing.grpc.pb.h"

namespace {

namespace bv = billing::v1;
using Clock = std::chrono::steady_clock;

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

struct Client {
  int n = 0;
  long seq = 0;
  unsigned long offset = 0;
  bool capturing = false;
  Clock::time_point t0;
  std::string key;
  std::unique_ptr<bv::BillingService::Stub> stub;
  std::unique_ptr<grpc::ClientContext> context;
  bv::ReserveRequest reserve;
  bv::ReserveResponse reserved;
  bv::CaptureRequest capture;
  bv::CaptureResponse captured;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<bv::ReserveResponse>> reserve_call;
  std::unique_ptr<grpc::ClientAsyncResponseReader<bv::CaptureResponse>> capture_call;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr, "usage: %s TARGET CLIENTS WARMUP SECONDS USERS AMOUNT CAPTURE TRACE_ID\n",
                 argv[0]);
    return 2;
  }
  const std::string target = argv[1];
  const int clients = std::stoi(argv[2]);
  const double warmup = std::stod(argv[3]);
  const double seconds = std::stod(argv[4]);
  const long users = std::stol(argv[5]);
  const long amount = std::stol(argv[6]);
  const long capture = std::stol(argv[7]);
  const std::string trace_id = argv[8];

  std::random_device entropy;
  const std::string run_id = std::to_string(entropy() % 1000000);
  grpc::CompletionQueue queue;
  std::vector<Client> all(clients);

  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(30); };
  auto start_reserve = [&](Client& c) {
    c.seq++;
    c.key = run_id + "-" + std::to_string(c.n) + "-" + std::to_string(c.seq);
    c.reserve.set_idempotency_key(c.key);
    c.reserve.set_user_id(static_cast<long>((c.offset + c.seq * 7919UL) % users) + 1);
    c.reserve.set_amount_credits(amount);
    bv::Job* job = c.reserve.mutable_job();
    job->set_chat_id(c.n + 1);
    job->set_message_id(c.seq);
    job->set_file_id("f");
    job->set_duration_seconds(60);
    job->set_trace_id(trace_id);
    c.context = std::make_unique<grpc::ClientContext>();
    c.context->set_deadline(deadline());
    c.capturing = false;
    c.t0 = Clock::now();
    c.reserve_call = c.stub->AsyncReserve(c.context.get(), c.reserve, &queue);
    c.reserve_call->Finish(&c.reserved, &c.status, &c);
  };
  auto start_capture = [&](Client& c) {
    c.capture.set_idempotency_key(c.key);
    c.capture.set_hold_id(c.reserved.hold().hold_id());
    c.capture.set_amount_credits(capture);
    c.context = std::make_unique<grpc::ClientContext>();
    c.context->set_deadline(deadline());
    c.capturing = true;
    c.capture_call = c.stub->AsyncCapture(c.context.get(), c.capture, &queue);
    c.capture_call->Finish(&c.captured, &c.status, &c);
  };

  for (int n = 0; n < clients; ++n) {
    grpc::ChannelArguments args;
    // A connection per client, as pgbench opens one per client.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    all[n].n = n;
    all[n].offset = entropy();
    all[n].stub = bv::BillingService::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    start_reserve(all[n]);
  }

  const Clock::time_point window_open = Clock::now() + Seconds(warmup);
  const Clock::time_point window_close = window_open + Seconds(seconds);
  Clock::time_point opened, closed;
  double cpu0 = 0, cpu1 = 0;
  bool counting = false, stopping = false;
  int live = clients;
  std::vector<double> latencies;
  void* tag = nullptr;
  bool ok = false;
  while (live > 0 && queue.Next(&tag, &ok)) {
    const Clock::time_point now = Clock::now();
    if (!counting && !stopping && now >= window_open) {
      counting = true;
      opened = now;
      cpu0 = CpuSeconds();
      std::printf("start\n");
      std::fflush(stdout);
    }
    if (counting && now >= window_close) {
      counting = false;
      stopping = true;
      closed = now;
      cpu1 = CpuSeconds();
      std::printf("end\n");
      std::fflush(stdout);
    }
    Client& c = *static_cast<Client*>(tag);
    if (!ok || !c.status.ok()) {
      std::fprintf(stderr, "client %d: %s failed: %s\n", c.n, c.capturing ? "Capture" : "Reserve",
                   c.status.error_message().c_str());
      return 1;
    }
    if (!c.capturing) {
      start_capture(c);
      continue;
    }
    if (counting) latencies.push_back(std::chrono::duration<double>(now - c.t0).count());
    if (stopping) {
      live--;
    } else {
      start_reserve(c);
    }
  }
  std::printf("{\"elapsed\": %.6f, \"cpu\": %.6f, \"latencies\": [",
              std::chrono::duration<double>(closed - opened).count(), cpu1 - cpu0);
  for (size_t i = 0; i < latencies.size(); ++i) std::printf(i ? ",%.6f" : "%.6f", latencies[i]);
  std::printf("]}\n");
  return 0;
}
