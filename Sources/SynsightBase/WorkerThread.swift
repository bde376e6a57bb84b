import Glibc

/// One POSIX thread running one closure, joined explicitly. synsight's
/// threads are few and long-lived (the pipeline, the ruleset reader), so a
/// bare pthread is enough: no executor, no pool.
public final class WorkerThread: @unchecked Sendable {
    package let thread: pthread_t
    package var joined = false

    /// Starts `body` on a new thread; `name` says which in errors. Throws
    /// the errno of pthread_create.
    public init(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        let ctx = Unmanaged.passRetained(Box(body)).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { ctx in
            Unmanaged<Box>.fromOpaque(ctx!).takeRetainedValue().body()
            return nil
        }, ctx)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(ctx).release()
            throw SystemError(call: "pthread_create (\(name) thread)", code: rc)
        }
        thread = t
    }

    /// Waits for the thread's closure to return. Idempotent.
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }
}
