import SynsightBase
import SynsightModel

/// Reads net.netfilter.nf_conntrack_max from /proc (one small file): called
/// by the firewall area on the pipeline thread when a packet without a
/// conntrack entry is dropped. A storm of such drops (a full table under
/// load) reads it at most every `ttlNs`.
public final class ConntrackLimitReader: ConntrackLimitSource, @unchecked Sendable {
    let lock = ConditionLock()
    var cached: (at: UInt64, value: ConntrackLimits?)?
    let ttlNs: UInt64
    let path: String

    public init(ttlNs: UInt64 = 200_000_000, path: String = ConntrackLimits.maxPath) {
        self.ttlNs = ttlNs
        self.path = path
    }

    public func limits() -> ConntrackLimits? {
        let now = ConditionLock.now()
        return lock.withLock {
            if let c = cached, now &- c.at < ttlNs { return c.value }
            let value = ProcFS.read(path, limit: 64).flatMap(ConntrackLimits.parse(max:))
            cached = (now, value)
            return value
        }
    }
}
