// pipewright's MPI transport: a second N-API addon, built apart from the oneDNN one so that a
// machine without Open MPI still builds and trains on threads.
//
// One communication thread owns every MPI call (Open MPI 4.1 has no asynchronous progress thread:
// requests advance only inside MPI calls, so someone must keep calling). JS queues commands (send,
// listen, split, barrier, finalize) and gets messages and completions back through one thread-safe
// function, so the JS thread never blocks in MPI. Receives are pre-posted: for every (communicator,
// tag) being listened to, the thread matches arriving messages of any size with MPI_Improbe and
// receives them with MPI_Imrecv. It never spins for long: after a short burst of polling without
// progress it sleeps with exponential backoff (10 us .. 1 ms), woken early by any new command.
//
// A rank is usually bound to one core, which its compute (JS) thread keeps busy: a message handed
// to this thread would wait for a time slice before it leaves. So with MPI_THREAD_MULTIPLE the JS
// thread starts its sends itself (MPI_Isend returns once the message is on its way: eager, or the
// receiver pulls it by single copy), and it may drive progress between actions (`progress`). While
// the JS thread waits on its event loop (`setJsState`), this thread polls hot, yielding the core, so
// an arriving message is taken in within microseconds rather than after a backoff sleep. A JS thread
// with nothing else to do may poll for itself (`receive`): the message then skips the hop through
// the thread-safe function and the event loop, and this thread stays out of its way.
#include <mpi.h>
#include <napi.h>
#include <sched.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

enum class Cmd { Send, Listen, Split, Barrier, Finalize };

struct Command {
  Cmd kind;
  int comm = 0, peer = 0, tag = 0, color = 0, key = 0;
  double id = 0;  // completion id handed back to JS
  std::vector<char> data;
};

enum class Ev { Message, Done, Error, Finalized };

/**
 * The JS thread computes (this thread backs off), waits on its event loop (this thread polls hot),
 * or polls MPI itself (this thread leaves the polling to it).
 */
enum class JsState { Computing, Waiting, Polling };

/** The received bytes as an ArrayBuffer that owns them (no copy); freed with it. */
Napi::ArrayBuffer ownedBuffer(Napi::Env env, std::vector<char>&& data) {
  auto* owned = new std::vector<char>(std::move(data));
  if (owned->empty()) owned->reserve(1);
  return Napi::ArrayBuffer::New(env, owned->data(), owned->size(),
                                [](Napi::Env, void*, std::vector<char>* v) { delete v; }, owned);
}

struct Event {
  Ev kind;
  int comm = 0, source = 0, tag = 0;
  double id = 0, value = 0;
  double seq = 0;  // messages: the order they completed in (two paths reach JS; it restores this order)
  std::string text;
  std::vector<char> data;
  bool taken = false;  // messages: handed to JS by receive() before their event ran (under queuedMu_)
};

struct Send { MPI_Request req; std::vector<char> data; };
struct Recv { MPI_Request req; int comm, source, tag; std::vector<char> data; };
struct Pending { MPI_Request req; double id; };

class Comm {
 public:
  static Comm& get() { static Comm c; return c; }

  int rank = -1, size = 0, provided = -1;
  bool started = false, finalized = false;
  std::string initError;

  void start(Napi::Env env, Napi::Function onEvent) {
    tsfn_ = Napi::ThreadSafeFunction::New(env, onEvent, "pipewright-mpi", 0, 1);
    std::unique_lock<std::mutex> lk(mu_);
    thread_ = std::thread([this] { run(); });
    thread_.detach();
    cv_.wait(lk, [this] { return initDone_; });
    started = true;
  }

  void push(Command c) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      cmds_.push_back(std::move(c));
    }
    cv_.notify_one();
  }

  /** On the calling (JS) thread: MPI_Isend now, so the message does not wait for this thread's slice. */
  void sendNow(Command c) {
    {
      std::lock_guard<std::mutex> lk(mpiMu_);
      apply(c);
    }
    // Wake the communication thread (through the command lock, so the wake-up is not lost): the
    // transfer in flight must be polled to completion.
    {
      std::lock_guard<std::mutex> lk(mu_);
      kick_ = true;
    }
    cv_.notify_one();
  }

  /** On the JS thread between actions: one poll, unless the communication thread is polling now. */
  void progressNow() {
    std::unique_lock<std::mutex> lk(mpiMu_, std::try_to_lock);
    if (lk.owns_lock() && !finalizing_) poll();
  }

  /**
   * On the JS thread while it waits: one poll whose received messages are handed back directly,
   * without the hop through the thread-safe function and the event loop (tens of µs).
   */
  std::vector<Event*> receiveNow() {
    std::vector<Event*> got;
    takeQueued(got);
    std::unique_lock<std::mutex> lk(mpiMu_, std::try_to_lock);
    if (lk.owns_lock() && !finalizing_) poll(&got);
    return got;
  }

  /** What the JS thread does now: computes, waits on the event loop, or polls MPI itself. */
  void setJsState(JsState st) {
    const JsState before = jsState_.exchange(st, std::memory_order_relaxed);
    if (st == before || st == JsState::Computing) return;
    {
      std::lock_guard<std::mutex> lk(mu_);  // ordered with the thread's wait predicate
      waitSeq_.fetch_add(1, std::memory_order_relaxed);
    }
    cv_.notify_one();
  }

  MPI_Comm comm(int id) {
    std::lock_guard<std::mutex> lk(mu_);
    return id >= 0 && id < (int)comms_.size() ? comms_[id] : MPI_COMM_NULL;
  }

 private:
  Napi::ThreadSafeFunction tsfn_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool initDone_ = false;
  std::deque<Command> cmds_;
  std::vector<MPI_Comm> comms_;
  std::vector<std::pair<int, int>> listens_;
  std::list<Send> sends_;
  std::list<Recv> recvs_;
  std::list<Pending> barriers_;
  bool finalizing_ = false;
  // Guards every MPI call and the lists above, which both threads now use (JS: sends, progress).
  std::mutex mpiMu_;
  std::atomic<JsState> jsState_{JsState::Computing};
  std::atomic<unsigned> waitSeq_{0};
  bool kick_ = false;  // under mu_: the JS thread started a transfer
  uint64_t nextSeq_ = 0;  // under mpiMu_
  std::mutex queuedMu_;
  std::deque<Event*> queued_;  // message events handed to the event loop that have not run yet
  // Polls (each yielding the core) while a transfer is in flight before backing off (PIPEWRIGHT_MPI_SPIN).
  int spinInFlight_ = [] { const char* s = std::getenv("PIPEWRIGHT_MPI_SPIN"); int v = s ? std::atoi(s) : -1; return v >= 0 ? v : 4096; }();
  // The longest sleep between polls when nothing happens: the worst added latency of a message that
  // arrives while this thread sleeps, against the CPU a waiting rank burns (PIPEWRIGHT_MPI_MAX_SLEEP_US).
  int maxSleepUs_ = [] { const char* s = std::getenv("PIPEWRIGHT_MPI_MAX_SLEEP_US"); int v = s ? std::atoi(s) : 0; return v > 0 ? v : 200; }();
  // Yielding polls while the JS thread waits (PIPEWRIGHT_MPI_HOT_POLLS; 0 turns hot polling off).
  int hotPolls_ = [] { const char* s = std::getenv("PIPEWRIGHT_MPI_HOT_POLLS"); int v = s ? std::atoi(s) : -1; return v >= 0 ? v : 50000; }();
  std::thread thread_;

  void emit(Event* e) {
    if (e->kind == Ev::Message) {
      std::lock_guard<std::mutex> lk(queuedMu_);
      queued_.push_back(e);
    }
    tsfn_.BlockingCall(e, [](Napi::Env env, Napi::Function fn, Event* ev) {
      if (ev->kind == Ev::Message && Comm::get().unqueue(ev)) { delete ev; return; }
      deliver(env, fn, ev);
    });
  }

  /** A message event about to run leaves the queue; true if receive() already handed it to JS. */
  bool unqueue(Event* ev) {
    std::lock_guard<std::mutex> lk(queuedMu_);
    auto it = std::find(queued_.begin(), queued_.end(), ev);
    if (it != queued_.end()) queued_.erase(it);
    return ev->taken;
  }

  /**
   * Messages already handed to the event loop whose events have not run: the JS thread takes them
   * here (their events then do nothing). A thread waiting inside a synchronous call never runs its
   * event loop, and delivery is in order, so one such message would hold back every later one.
   */
  void takeQueued(std::vector<Event*>& got) {
    std::lock_guard<std::mutex> lk(queuedMu_);
    for (Event* q : queued_) {
      auto* c = new Event{Ev::Message, q->comm, q->source, q->tag};
      c->seq = q->seq;
      c->data = std::move(q->data);
      q->taken = true;
      got.push_back(c);
    }
    queued_.clear();
  }

  static void deliver(Napi::Env env, Napi::Function fn, Event* ev) {
    static const char* kinds[] = {"message", "done", "error", "finalized"};
    Napi::Value buf = ev->kind == Ev::Message ? Napi::Value(ownedBuffer(env, std::move(ev->data))) : env.Null();
    Napi::Value a = ev->kind == Ev::Message ? Napi::Number::New(env, ev->comm) : Napi::Number::New(env, ev->id);
    Napi::Value b = ev->kind == Ev::Message ? Napi::Number::New(env, ev->source) : Napi::Number::New(env, ev->value);
    Napi::Value c = ev->kind == Ev::Error ? Napi::Value(Napi::String::New(env, ev->text)) : Napi::Value(Napi::Number::New(env, ev->tag));
    fn.Call({Napi::String::New(env, kinds[(int)ev->kind]), a, b, c, buf, Napi::Number::New(env, ev->seq)});
    delete ev;
  }

  void fail(const std::string& what, int code) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, msg, &len);
    auto* e = new Event{Ev::Error};
    e->text = what + ": " + std::string(msg, len);
    emit(e);
  }

  void run() {
    int argc = 0;
    char** argv = nullptr;
    int rc = MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (rc != MPI_SUCCESS) initError = "MPI_Init_thread failed";
      else {
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        comms_.push_back(MPI_COMM_WORLD);
      }
      initDone_ = true;
    }
    cv_.notify_all();
    if (rc != MPI_SUCCESS) return;
    loop();
  }

  void loop() {
    int idle = 0;
    bool inFlight = false, nothing = true;
    unsigned seenWait = 0;
    for (;;) {
      // A new wait of the JS thread starts a new burst of hot polling.
      const unsigned w = waitSeq_.load(std::memory_order_relaxed);
      if (w != seenWait) { seenWait = w; idle = 0; }
      const JsState js = jsState_.load(std::memory_order_relaxed);
      const bool waiting = js == JsState::Waiting, jsPolls = js == JsState::Polling;
      // While the JS thread waits, its core is free: poll hot (yielding) for a while. A transfer in
      // flight advances only inside MPI calls (rendezvous fragments do not count as completions),
      // so keep polling it too; but while the JS thread computes it drives progress between its
      // actions, and polling here would only take its core, so back off almost at once.
      const int spin = waiting ? (nothing ? 64 : hotPolls_) : inFlight ? 64 : 16;
      std::deque<Command> todo;
      {
        std::unique_lock<std::mutex> lk(mu_);
        auto woken = [this, w] { return kick_ || !cmds_.empty() || waitSeq_.load(std::memory_order_relaxed) != w; };
        // The JS thread polls for itself: stay out of its way (and off its core) until it stops.
        if (jsPolls && cmds_.empty()) cv_.wait_for(lk, std::chrono::milliseconds(1), [this] { return !cmds_.empty() || jsState_.load(std::memory_order_relaxed) != JsState::Polling; });
        else if (cmds_.empty() && !kick_ && idle > spin) {
          if (nothing && !finalizing_) cv_.wait(lk, woken);
          else {
            // Backoff: 10 us doubling to maxSleepUs_; a new command or wait wakes the thread at once.
            // After ~20 ms of nothing at all the cap rises to 1 ms: a long wait costs almost no CPU.
            int cap = idle - spin > 100 + 20000 / std::max(1, maxSleepUs_) ? std::max(maxSleepUs_, 1000) : maxSleepUs_;
            int us = std::min(cap, 10 << std::min(idle - spin, 10));
            cv_.wait_for(lk, std::chrono::microseconds(us), woken);
          }
        }
        todo.swap(cmds_);
        if (kick_) { kick_ = false; idle = 0; }
      }
      bool progress = !todo.empty(), done;
      {
        std::lock_guard<std::mutex> mk(mpiMu_);
        for (auto& c : todo) apply(c);
        if (jsState_.load(std::memory_order_relaxed) != JsState::Polling) progress |= poll();
        inFlight = !sends_.empty() || !recvs_.empty() || !barriers_.empty();
        nothing = !inFlight && listens_.empty();
        done = finalizing_ && !inFlight;
      }
      if (done) { finish(); return; }
      if (progress) idle = 0;
      else if (++idle <= spin) sched_yield();
    }
  }

  void apply(Command& c) {
    switch (c.kind) {
      case Cmd::Send: {
        sends_.push_back(Send{MPI_REQUEST_NULL, std::move(c.data)});
        Send& s = sends_.back();
        int rc = MPI_Isend(s.data.data(), (int)s.data.size(), MPI_BYTE, c.peer, c.tag, comms_[c.comm], &s.req);
        if (rc != MPI_SUCCESS) { sends_.pop_back(); fail("MPI_Isend to rank " + std::to_string(c.peer), rc); }
        break;
      }
      case Cmd::Listen: listens_.emplace_back(c.comm, c.tag); break;
      case Cmd::Split: {
        MPI_Comm out;
        int rc = MPI_Comm_split(comms_[c.comm], c.color, c.key, &out);
        if (rc != MPI_SUCCESS) { fail("MPI_Comm_split", rc); break; }
        MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN);
        int id;
        {
          std::lock_guard<std::mutex> lk(mu_);
          id = (int)comms_.size();
          comms_.push_back(out);
        }
        emit(new Event{Ev::Done, 0, 0, 0, c.id, (double)id});
        break;
      }
      case Cmd::Barrier: {
        barriers_.push_back(Pending{MPI_REQUEST_NULL, c.id});
        int rc = MPI_Ibarrier(comms_[c.comm], &barriers_.back().req);
        if (rc != MPI_SUCCESS) { barriers_.pop_back(); fail("MPI_Ibarrier", rc); }
        break;
      }
      case Cmd::Finalize: finalizing_ = true; listens_.clear(); break;
    }
  }

  /**
   * One pass over every outstanding operation; true when anything completed or matched. Received
   * messages go to `sink` when given (the JS thread polling for itself), else through the
   * thread-safe function.
   */
  bool poll(std::vector<Event*>* sink = nullptr) {
    bool progress = false;
    for (auto [comm, tag] : listens_) {
      for (;;) {
        int flag = 0;
        MPI_Message m;
        MPI_Status st;
        int rc = MPI_Improbe(MPI_ANY_SOURCE, tag, comms_[comm], &flag, &m, &st);
        if (rc != MPI_SUCCESS) { fail("MPI_Improbe", rc); break; }
        if (!flag) break;
        int n = 0;
        MPI_Get_count(&st, MPI_BYTE, &n);
        recvs_.push_back(Recv{MPI_REQUEST_NULL, comm, st.MPI_SOURCE, tag, std::vector<char>((size_t)n)});
        Recv& r = recvs_.back();
        rc = MPI_Imrecv(r.data.data(), n, MPI_BYTE, &m, &r.req);
        if (rc != MPI_SUCCESS) { recvs_.pop_back(); fail("MPI_Imrecv", rc); }
        progress = true;
      }
    }
    // Receives complete in arrival order per (source, tag): deliver only from the front of the list,
    // so JS sees each peer's messages in the order they were sent (MPI's non-overtaking rule).
    while (!recvs_.empty()) {
      int flag = 0;
      Recv& r = recvs_.front();
      int rc = MPI_Test(&r.req, &flag, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) { fail("MPI_Test (receive)", rc); recvs_.pop_front(); continue; }
      if (!flag) break;
      auto* e = new Event{Ev::Message, r.comm, r.source, r.tag};
      e->seq = (double)nextSeq_++;
      e->data = std::move(r.data);
      recvs_.pop_front();
      if (sink) sink->push_back(e);
      else emit(e);
      progress = true;
    }
    for (auto it = sends_.begin(); it != sends_.end();) {
      int flag = 0;
      int rc = MPI_Test(&it->req, &flag, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) { fail("MPI_Test (send)", rc); flag = 1; }
      if (flag) { it = sends_.erase(it); progress = true; } else ++it;
    }
    for (auto it = barriers_.begin(); it != barriers_.end();) {
      int flag = 0;
      MPI_Test(&it->req, &flag, MPI_STATUS_IGNORE);
      if (flag) { emit(new Event{Ev::Done, 0, 0, 0, it->id, 0}); it = barriers_.erase(it); progress = true; } else ++it;
    }
    return progress;
  }

  void finish() {
    for (size_t i = 1; i < comms_.size(); i++) MPI_Comm_free(&comms_[i]);
    MPI_Finalize();
    finalized = true;
    emit(new Event{Ev::Finalized});
    tsfn_.Release();
  }
};

int intArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("mpi: ") + name + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

void requireStarted(const Napi::CallbackInfo& info) {
  Comm& c = Comm::get();
  if (!c.started || c.finalized) throw Napi::Error::New(info.Env(), "mpi: not initialised (call init first) or already finalized");
}

/** init(onEvent) -> { rank, size, threadLevel }: starts the communication thread and MPI. */
Napi::Value Init(const Napi::CallbackInfo& info) {
  Comm& c = Comm::get();
  if (c.started) throw Napi::Error::New(info.Env(), "mpi: init may be called once per process");
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "mpi: init needs an event callback");
  c.start(info.Env(), info[0].As<Napi::Function>());
  if (!c.initError.empty()) throw Napi::Error::New(info.Env(), "mpi: " + c.initError);
  auto o = Napi::Object::New(info.Env());
  o.Set("rank", c.rank);
  o.Set("size", c.size);
  o.Set("threadLevel", c.provided == MPI_THREAD_MULTIPLE ? "multiple" : c.provided == MPI_THREAD_SERIALIZED ? "serialized"
        : c.provided == MPI_THREAD_FUNNELED ? "funneled" : "single");
  return o;
}

/** send(comm, dest, tag, header: Uint8Array, body?: TypedArray): copies both into one message. */
Napi::Value Send(const Napi::CallbackInfo& info) {
  requireStarted(info);
  Command c{Cmd::Send};
  c.comm = intArg(info, 0, "comm");
  c.peer = intArg(info, 1, "dest");
  c.tag = intArg(info, 2, "tag");
  for (size_t i = 3; i < 5 && i < info.Length(); i++) {
    if (info[i].IsUndefined() || info[i].IsNull()) continue;
    if (!info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "mpi: send parts must be typed arrays");
    auto t = info[i].As<Napi::TypedArray>();
    const char* p = static_cast<const char*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    c.data.insert(c.data.end(), p, p + t.ByteLength());
  }
  Comm& comm = Comm::get();
  if (comm.provided == MPI_THREAD_MULTIPLE) comm.sendNow(std::move(c));
  else comm.push(std::move(c));
  return info.Env().Undefined();
}

/** progress(): one poll of every outstanding operation on this (JS) thread; cheap when idle. */
Napi::Value Progress(const Napi::CallbackInfo& info) {
  requireStarted(info);
  Comm& comm = Comm::get();
  if (comm.provided == MPI_THREAD_MULTIPLE) comm.progressNow();
  return info.Env().Undefined();
}

/** receive(): messages completed by one poll on this thread, and those whose events have not run yet, as [comm, source, tag, ArrayBuffer, seq] each. */
Napi::Value Receive(const Napi::CallbackInfo& info) {
  requireStarted(info);
  Comm& comm = Comm::get();
  Napi::Env env = info.Env();
  std::vector<Event*> got;
  if (comm.provided == MPI_THREAD_MULTIPLE) got = comm.receiveNow();
  auto out = Napi::Array::New(env, got.size());
  for (size_t i = 0; i < got.size(); i++) {
    Event* ev = got[i];
    auto m = Napi::Array::New(env, 5);
    m.Set(0u, ev->comm);
    m.Set(1u, ev->source);
    m.Set(2u, ev->tag);
    m.Set(3u, ownedBuffer(env, std::move(ev->data)));
    m.Set(4u, ev->seq);
    out.Set(i, m);
    delete ev;
  }
  return out;
}

/** setJsState(0 | 1 | 2): the JS thread computes, waits on its event loop, or polls with `receive` itself. */
Napi::Value SetJsState(const Napi::CallbackInfo& info) {
  requireStarted(info);
  int st = intArg(info, 0, "state");
  if (st < 0 || st > 2) throw Napi::RangeError::New(info.Env(), "mpi: setJsState takes 0 (computing), 1 (waiting) or 2 (polling)");
  Comm::get().setJsState(static_cast<JsState>(st));
  return info.Env().Undefined();
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  requireStarted(info);
  Command c{Cmd::Listen};
  c.comm = intArg(info, 0, "comm");
  c.tag = intArg(info, 1, "tag");
  Comm::get().push(std::move(c));
  return info.Env().Undefined();
}

/** split(comm, color, key, id): completion 'done' (id, new communicator id). */
Napi::Value Split(const Napi::CallbackInfo& info) {
  requireStarted(info);
  Command c{Cmd::Split};
  c.comm = intArg(info, 0, "comm");
  c.color = intArg(info, 1, "color");
  c.key = intArg(info, 2, "key");
  c.id = intArg(info, 3, "id");
  Comm::get().push(std::move(c));
  return info.Env().Undefined();
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  requireStarted(info);
  Command c{Cmd::Barrier};
  c.comm = intArg(info, 0, "comm");
  c.id = intArg(info, 1, "id");
  Comm::get().push(std::move(c));
  return info.Env().Undefined();
}

/** commInfo(comm) -> { rank, size }. */
Napi::Value CommInfo(const Napi::CallbackInfo& info) {
  requireStarted(info);
  MPI_Comm comm = Comm::get().comm(intArg(info, 0, "comm"));
  if (comm == MPI_COMM_NULL) throw Napi::Error::New(info.Env(), "mpi: no such communicator");
  int r = 0, s = 0;
  MPI_Comm_rank(comm, &r);
  MPI_Comm_size(comm, &s);
  auto o = Napi::Object::New(info.Env());
  o.Set("rank", r);
  o.Set("size", s);
  return o;
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  requireStarted(info);
  Comm::get().push(Command{Cmd::Finalize});
  return info.Env().Undefined();
}

/**
 * singleCopyWorks(): whether this process may use Linux cross-memory attach (process_vm_readv),
 * which shared-memory MPI uses to move a large message in one copy. Container sandboxes often
 * forbid the system call; MPI need not be initialised.
 */
Napi::Value SingleCopyWorks(const Napi::CallbackInfo& info) {
  static volatile int source = 0x5eed;
  int target = 0;
  iovec local{&target, sizeof target}, remote{const_cast<int*>(&source), sizeof source};
  ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  return Napi::Boolean::New(info.Env(), n == (ssize_t)sizeof target && target == source);
}

/** abort(code): ends every rank of the job (mpirun reports it); does not return. */
Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

Napi::Object Init_(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("send", Napi::Function::New(env, Send));
  exports.Set("listen", Napi::Function::New(env, Listen));
  exports.Set("progress", Napi::Function::New(env, Progress));
  exports.Set("receive", Napi::Function::New(env, Receive));
  exports.Set("setJsState", Napi::Function::New(env, SetJsState));
  exports.Set("split", Napi::Function::New(env, Split));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("commInfo", Napi::Function::New(env, CommInfo));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("singleCopyWorks", Napi::Function::New(env, SingleCopyWorks));
  return exports;
}

}  // namespace

NODE_API_MODULE(pipewright_mpi, Init_)
