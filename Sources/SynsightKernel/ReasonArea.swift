import SynsightModel

/// The reason areas, each with the programs it needs from the kernel
/// (its `plan`, written next to its probes in Features+<area>.swift).
public enum ReasonArea: String, Sendable, CaseIterable {
    /// no_listener: the RST sent for a SYN that found no socket.
    case noListener
    /// The listener registry, listener exits and the local client's side of
    /// every reason (needed by all of them).
    case connections
    /// firewall_reject, firewall_drop.
    case firewall
    /// packet_dropped: handshake packets dropped for any other reason.
    case packetDrops
    /// accept_queue_full, syn_queue_full.
    case overflow
    /// fd_exhausted: accept() failing with EMFILE/ENFILE.
    case fdExhausted
    /// address_in_use, privileged_port, address_not_available,
    /// ephemeral_ports_exhausted, lsm_denied (SELinux, others by elimination).
    case syscalls
    /// lsm_denied by Landlock: landlock_restrict_self and fork inheritance.
    case landlock
    /// Injected resets: the TTL of the RST that refused a local client
    /// against the peer's usual one (evidence `reset`, injected_reset_suspected).
    case injectedResets

    /// Tracing does not start without it.
    public var required: Bool { self == .noListener || self == .connections }

    func plan(_ f: KernelFeatures) -> AreaPlan {
        switch self {
        case .noListener: return Self.noListenerPlan(f)
        case .connections: return Self.connectionsPlan(f)
        case .firewall: return Self.firewallPlan(f)
        case .packetDrops: return Self.packetDropsPlan(f)
        case .overflow: return Self.overflowPlan(f)
        case .fdExhausted: return Self.fdExhaustedPlan(f)
        case .syscalls: return Self.syscallsPlan(f)
        case .landlock: return Self.landlockPlan(f)
        case .injectedResets: return Self.injectedResetsPlan(f)
        }
    }

    /// The programs of one no-listener RST hook.
    static func noListenerPlan(_ f: KernelFeatures) -> AreaPlan {
        switch f.chooseResetHook() {
        case .success(.tcpSendReset): return .run([.onTcpSendReset])
        case .success(.kfreeSkb): return .run([.onKfreeSkb])
        case .success(.fentry): return .run([.rstFentryV4, .rstFentryV6])
        case .success(.kprobe): return .run([.rstKprobeV4, .rstKprobeV6])
        case .failure(let e):
            let probes = KernelFeatures.resetPreference.map(f.result(for:))
            var why = CannotRun(needs: "a no-listener RST hook",
                                probe: probes.first(where: \.isInconclusive) ?? .unsupported(e.why))
            why.kernelError = e
            return .cannotRun(why)
        }
    }

    /// Listener exits always; connections without the state-change hook
    /// where they can be, else inet_sock_set_state. Without it, the
    /// connect() an application gives up on is seen by tcp_destroy_sock,
    /// armed by its watch (HookArming); with it, at SYN_SENT -> CLOSE.
    static func connectionsPlan(_ f: KernelFeatures) -> AreaPlan {
        guard f.schedProcessExit.isSupported else {
            return .cannotRun(CannotRun(needs: "tp_btf/sched_process_exit", probe: f.schedProcessExit))
        }
        if f.connectWithoutStateHook.isSupported {
            var programs: Set<BPFProgram> = [.onProcessExit, .connConnect4, .connConnect6, .onSkErrorReport, .runReapListeners]
            if f.tcpDestroySock.isSupported { programs.formUnion([.tmoDestroySock, .runTmoWatch]) }
            return .run(programs)
        }
        guard f.inetSockSetState.isSupported else {
            return .cannotRun(CannotRun(needs: "tp_btf/inet_sock_set_state", probe: f.inetSockSetState))
        }
        return .run([.onProcessExit, .sockState])
    }
}
