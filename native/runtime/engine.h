// The one thread that runs libtorch work for the whole process: forward passes, training steps, generation.
//
// Why one: on CPU, libtorch's ops parallelise inside themselves (OpenMP: one team of threads per calling thread),
// and glibc gives every thread that allocates its own malloc arena. Running each call on whichever libuv worker
// was free made several OpenMP teams share the cores, and every arena kept its own high-water mark of freed
// activations: 3.9 GB peak RSS over four training steps at the benchmark's shapes, 1.8 GB with the same work on
// one thread (docs/performance.md). Python runs its ops on one thread; so does tpo. Calls run in the order they
// were made, one at a time, so two calls on one model never interleave.
#pragma once

#include <functional>

namespace tpo::runtime {

// Queues `task` on the engine thread (started on first use). A task must not throw: wrap its work.
void run_on_engine(std::function<void()> task);

// True on the engine thread (a task that would wait for another engine task would deadlock).
bool on_engine_thread();

}  // namespace tpo::runtime
