import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Reads this node's identity once (hostname, /etc/machine-id,
/// /proc/sys/kernel/random/boot_id).
public enum NodeIdentityReader {
    public static func read() -> NodeIdentity {
        var buf = [CChar](repeating: 0, count: 256)
        let host: String? = gethostname(&buf, buf.count - 1) == 0
            ? String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        return NodeIdentity(hostname: host, machineIDFile: ProcFS.read("/etc/machine-id", limit: 256),
                            bootIDFile: ProcFS.read("/proc/sys/kernel/random/boot_id", limit: 256))
    }
}
