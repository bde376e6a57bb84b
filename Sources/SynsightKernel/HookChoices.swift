import SynsightModel

/// Hooks chosen by the caller instead of by the probes: `trace --reset-hook`
/// and the hidden `--force-hook area=hook` (tests, and a user on a kernel
/// where the preferred hook misbehaves). Part of the probe run: a hook set
/// aside is reported as unsupported "disabled by --force-hook ...".
public struct HookChoices: Sendable, Equatable {
    /// The no-listener RST hook (`--reset-hook`, `--force-hook reset=...`).
    public var reset: ResetHook?
    /// bind/listen/connect failures: skip the preferred groups.
    public var syscallEntry: SyscallEntry?
    /// Overflow: kprobes instead of BPF trampolines (where both work).
    public var overflow: OverflowHook?
    /// Keep the state-change hook instead of cgroup/connect + inet_sk_error_report.
    public var connect: ConnectHook?
    /// Injected resets: kprobes instead of BPF trampolines (where both work).
    public var resetTTL: ResetTTLProbes.Hook?

    public init() {}

    /// Each case sets the groups preferred to it aside (fentry/fexit on
    /// __sys_{bind,listen,connect} first, then the classic tracepoints).
    public enum SyscallEntry: String, Sendable, CaseIterable {
        /// syscalls:sys_{enter,exit}_* (skips the trampolines).
        case tracepoint
        /// tp_btf/sys_enter + sys_exit (skips the trampolines and the classic tracepoints).
        case raw
    }

    public enum OverflowHook: String, Sendable, CaseIterable {
        /// kprobe/kretprobe instead of fentry/fexit (where both work).
        case kprobe
    }

    public enum ConnectHook: String, Sendable, CaseIterable {
        /// tp_btf/inet_sock_set_state (about 10 runs per connection) instead
        /// of cgroup/connect{4,6} + inet_sk_error_report.
        case stateChange = "inet_sock_set_state"
    }

    /// The areas `--force-hook` knows, with their hooks, for help and errors.
    public static let forceable: [(area: String, hooks: [String])] = [
        ("reset", ["tcp_send_reset", "fentry", "kprobe", "kfree_skb"]),
        ("syscall", SyscallEntry.allCases.map(\.rawValue)),
        ("overflow", OverflowHook.allCases.map(\.rawValue)),
        ("connect", ConnectHook.allCases.map(\.rawValue)),
        ("resetttl", ["kprobe"]),
    ]

    /// Applies one `area=hook`; nil when it names no known area or hook.
    public mutating func force(_ spec: String) -> Self? {
        let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        switch parts[0] {
        case "reset":
            guard let h = Self.resetHook(named: parts[1]) else { return nil }
            reset = h
        case "syscall":
            guard let h = SyscallEntry(rawValue: parts[1]) else { return nil }
            syscallEntry = h
        case "overflow":
            guard let h = OverflowHook(rawValue: parts[1]) else { return nil }
            overflow = h
        case "connect":
            guard let h = ConnectHook(rawValue: parts[1]) else { return nil }
            connect = h
        case "resetttl":
            guard parts[1] == "kprobe" else { return nil }
            resetTTL = .kprobe
        default:
            return nil
        }
        return self
    }

    public static func resetHook(named s: String) -> ResetHook? {
        switch s {
        case "tcp_send_reset", "tp_btf/tcp_send_reset": return .tcpSendReset
        case "kfree_skb", "tp_btf/kfree_skb": return .kfreeSkb
        case "fentry": return .fentry
        case "kprobe": return .kprobe
        default: return nil
        }
    }
}
