import SynsightBase

/// How a listening process was started: its parent and its command line
/// (hashed), read when it started listening (or at the start-up snapshot).
/// Where no unit, container or pod groups a service's processes (no
/// systemd, cgroups not delegated), the same parent starting the same
/// command line again after the listener exited is its restart: a
/// supervisor (supervisord, runit, s6, a shell loop).
public struct ProcessLaunch: Sendable, Hashable {
    /// The parent's PID (never 1: an orphan's adoptive init restarts nothing).
    public var parent: UInt32
    public var parentComm: String
    /// FNV-1a of /proc/<pid>/cmdline's bytes.
    public var commandLineHash: UInt64

    public init(parent: UInt32, parentComm: String, commandLineHash: UInt64) {
        self.parent = parent
        self.parentComm = parentComm
        self.commandLineHash = commandLineHash
    }

    /// FNV-1a, 64 bits: equal command lines hash equal; a collision between
    /// two programs of the same name and parent would take one for the other.
    public static func hash(commandLine bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }

    /// "supervisord (pid 120)".
    public var parentLabel: String { "\(parentComm) (pid \(parent))" }
}
