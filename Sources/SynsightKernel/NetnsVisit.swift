import CSynsightShim
import Glibc
import SynsightBase

/// One visit of a reader thread to another network namespace: open it
/// (unless a pin already holds it open), enter it, run the read, come back.
/// `setns` changes only the calling thread, so the readers (NftablesReader,
/// RouteReader) visit from threads of their own.
struct NetnsVisit {
    /// synsight's own namespace, to come back to (-1: it could not be opened).
    let home: Int32
    let ownNetns: UInt32?

    init() {
        ownNetns = ProcFS.nsInode("/proc/self/ns/net")
        home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)
    }

    func close() { if home >= 0 { Glibc.close(home) } }

    enum Failure: Error {
        /// Not in /run/netns and no process lives in it.
        case gone(UInt32)
        case noHome
        case cannotEnter(UInt32, errno: Int32)

        var description: String {
            switch self {
            case .gone(let ns): return "network namespace \(ns) is gone (not in /run/netns, no process in it)"
            case .noHome: return "cannot open synsight's own network namespace"
            case .cannotEnter(let ns, let e): return "cannot enter network namespace \(ns): \(ErrnoName.name(e))"
            }
        }
    }

    /// Runs `body` in `netns` (here when it is synsight's own or unknown) and
    /// comes back. `fd` is the pinned namespace or -1; `kept` is the fd to
    /// pin afterwards (-1: none). `stranded`: the thread could not come back
    /// and must refuse every later read.
    func run<T>(_ netns: UInt32, fd: Int32, _ body: () -> T)
        -> (result: Result<T, Failure>, kept: Int32, stranded: Bool) {
        if netns == 0 || netns == ownNetns { return (.success(body()), -1, false) }
        let fd = fd >= 0 ? fd : NetnsPaths.open(netns)
        guard fd >= 0 else { return (.failure(.gone(netns)), -1, false) }
        guard home >= 0 else { return (.failure(.noHome), fd, false) }
        let rc = syn_setns_net(fd)
        guard rc == 0 else { return (.failure(.cannotEnter(netns, errno: -rc)), fd, false) }
        let value = body()
        return (.success(value), fd, syn_setns_net(home) != 0)
    }

    /// Namespaces to unpin: those not wanted for `idleNs`, then the longest
    /// idle beyond `maxPins`; never a `busy` one (a read queued for it).
    static func evictable(_ lastWanted: [UInt32: UInt64], now: UInt64, idleNs: UInt64, maxPins: Int,
                          busy: (UInt32) -> Bool) -> [UInt32] {
        let candidates = lastWanted.filter { !busy($0.key) }
        var idle = candidates.filter { $0.value &+ idleNs <= now }.map(\.key)
        let over = lastWanted.count - idle.count - maxPins
        if over > 0 {
            let idleSet = Set(idle)
            idle += candidates.filter { !idleSet.contains($0.key) }.sorted { $0.value < $1.value }.prefix(over).map(\.key)
        }
        return idle
    }
}
