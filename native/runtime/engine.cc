#include "runtime/engine.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "runtime/runtime.h"

namespace tpo::runtime {
namespace {

thread_local bool is_engine_thread = false;

class Engine {
 public:
  Engine() {
    // Detached and never destroyed: at process exit the thread is idle (pending work keeps Node's loop alive),
    // and joining a static thread from a destructor would order it against libtorch's own static teardown.
    std::thread([this] { loop(); }).detach();
  }

  void submit(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
  }

 private:
  void loop() {
    is_engine_thread = true;
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      apply_num_threads();  // setNumThreads() may have changed the count since the last task
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
};

Engine& engine() {
  static Engine* instance = new Engine();  // leaked on purpose, see the constructor
  return *instance;
}

}  // namespace

void run_on_engine(std::function<void()> task) { engine().submit(std::move(task)); }

bool on_engine_thread() { return is_engine_thread; }

}  // namespace tpo::runtime
