/// When each of synsight's BPF programs runs: for healthy traffic (a cost
/// every host pays all the time) or only when something fails or on rare
/// events. One entry per program of bpf/ (the switch is over the generated
/// enum: a new program does not build without one); `doctor` prints it per hook.
public struct HookCadence: Sendable, Equatable {
    /// Runs for traffic that never fails (per connection, packet or syscall).
    public var healthy: Bool
    /// What makes it run.
    public var trigger: String

    static func h(_ t: String) -> HookCadence { HookCadence(healthy: true, trigger: t) }
    static func f(_ t: String) -> HookCadence { HookCadence(healthy: false, trigger: t) }

    static let connectCall = h("every connect() on the host (one compare unless it failed)")
    static let bindListen = f("every bind(), listen() or landlock_restrict_self() on the host")
    static let kfreeSkb = h("every packet freed with a drop reason (a closing connection frees one)")
    static let synRecv = h("every handshake a listener completes" + armed)
    static let anyRST = f("every RST the host sends")
    /// What arming the overflow programs means, for `doctor`.
    public static var armedOnAnomaly: String { ArmingPurpose.overflowArmedText }

    /// The overflow programs armed on anomaly (BPFProgram.armedWithOverflow).
    static var armed: String {
        ", attached only while a listener's queue is full or its drop counter moves, until \(ArmingPurpose.overflow.quietText) "
            + "pass without either (\(ArmingPurpose.overflow.periodText) sweep)"
    }

    public static func of(_ program: BPFProgram) -> HookCadence {
        switch program {
        case .sockState: return .h("every TCP state change on the host (both ends of a local connection: about 10)")
        case .connConnect4: return .h("every IPv4 connect() on the host (TCP: the caller is remembered)")
        case .connConnect6: return .h("every IPv6 connect() on the host (TCP: the caller is remembered)")
        case .runReapListeners: return .f("every 5 s, run by synsight: a walk of its listener registry")
        case .onSkErrorReport: return .f("every socket error report (refused, reset, timed out, unreachable)")
        case .ovfConsumeSkb: return .h("every packet consumed on the host (two compares unless tcp_rcv_state_process consumed it)" + armed)
        case .runOvfWatch: return .f("every \(ArmingPurpose.overflow.periodText), run by synsight: a look at each listener it knows (queues, drop counters; the registry walked again only when a listener came or went)")
        case .runTmoWatch:
            return .f("run by synsight every \(ArmingPurpose.abandonedConnects.periodText) once a SYN was retransmitted (else not: "
                + "a map read): a walk of the connecting sockets with an unanswered SYN")
        case .tmoDestroySock:
            return .h("every TCP socket destroyed on the host (a lookup), attached only while a connect()'s SYN is unanswered, "
                + "until \(ArmingPurpose.abandonedConnects.quietText) after the last one's outcome")
        case .onKfreeSkb: return kfreeSkb
        case .ovfFentryConnRequest, .ovfKprobeConnRequest: return .h("every SYN to a listener" + armed)
        case .ovfFexitConnRequest, .ovfKretprobeConnRequest:
            return .h("every SYN to a listener (one compare unless the listener's drop counter rose)" + armed)
        case .ovfFexitSynRecvV4, .ovfFexitSynRecvV6, .ovfKprobeSynRecvV4, .ovfKprobeSynRecvV6,
             .ovfKretprobeSynRecvV4, .ovfKretprobeSynRecvV6: return synRecv
        case .ovfExitAccept: return .h("every accept() on the host (one compare unless EMFILE/ENFILE)" + armed)
        case .ovfExitAccept4: return .h("every accept4() on the host (one compare unless EMFILE/ENFILE)" + armed)
        case .ovfFxExitAccept4: return .h("every accept() on the host (one compare unless EMFILE/ENFILE)" + armed)
        case .iterListeners: return .f("once per network namespace at start, run by synsight")
        case .scRawEnter, .scRawExit: return .h("every system call on the host")
        case .scTpEnterConnect, .scTpExitConnect, .scFxExitConnect: return connectCall
        case .scTpEnterBind, .scTpExitBind, .scTpEnterListen, .scTpExitListen, .scTpExitLandlock,
             .scFxEnterBind, .scFxExitBind, .scFxEnterListen, .scFxExitListen, .scFxExitLandlock: return bindListen
        case .onTcpSendReset: return anyRST
        case .rstFentryV4, .rstKprobeV4: return .f("every IPv4 RST sent without a socket")
        case .rstFentryV6, .rstKprobeV6: return .f("every IPv6 RST sent without a socket")
        case .rttlFentryReset, .rttlKprobeReset:
            return .f("every RST a TCP socket accepts (a state read; reports connecting sockets only)")
        case .rttlFentryFinishConnect, .rttlKprobeFinishConnect:
            return .h("every completed outgoing handshake (a lookup), attached only after a refusal by a remote peer, "
                + "until 10 min without one")
        case .fwIcmpSend: return .f("every ICMP error the host sends")
        case .fwSynRetransmit: return .f("every TCP retransmission (a state read; reports SYN_SENT only)")
        case .scSelinuxAudited: return .f("every audited SELinux decision")
        case .scLandlockFork: return .f("every fork on the host (a lookup)")
        case .onProcessExit: return .f("every thread exit on the host (two loads unless it is a process's last thread)")
        }
    }
}

extension BPFProgram {
    /// Run by synsight itself instead of attached: the iterator
    /// (Tracer.seedListeners), the listener sweep (Tracer.sweepListeners)
    /// and the watches that arm programs (HookArming).
    public var runOnDemand: Bool {
        self == .iterListeners || self == .runReapListeners || self == .runOvfWatch || self == .runTmoWatch
    }

    /// Loaded with the plan but attached only while needed: the baseline
    /// of injected resets while a refused peer is watched
    /// (Tracer+ResetTTL.swift; once per completed outgoing handshake), and
    /// the per-SYN consume_skb program while a listener's queue is full or
    /// its drop counter moves (HookArming; every consumed packet), and
    /// tcp_destroy_sock while a connect()'s SYN is unanswered (HookArming).
    public var attachOnDemand: Bool {
        self == .rttlFentryFinishConnect || self == .rttlKprobeFinishConnect || self == .ovfConsumeSkb
            || self == .tmoDestroySock
    }

    /// Attached only while a listener's queue is full or its drop counter
    /// moves (HookArming; the overflow plan has `runOvfWatch`): the
    /// per-SYN program (consume_skb, or fentry/kprobe on tcp_conn_request:
    /// every SYN to a listener is one healthy connection's), the ACK-stage
    /// fexit or kprobe/kretprobe on tcp_v{4,6}_syn_recv_sock (an ACK
    /// overflows only a full accept queue) and the accept() exits (an
    /// EMFILE/ENFILE matters to a handshake once the queue fills). Drops
    /// before they are attached are counted from the listeners' sk_drops.
    public var armedWithOverflow: Bool {
        switch self {
        case .ovfConsumeSkb, .ovfFentryConnRequest, .ovfKprobeConnRequest, .ovfFexitConnRequest, .ovfKretprobeConnRequest,
             .ovfFexitSynRecvV4, .ovfFexitSynRecvV6, .ovfKprobeSynRecvV4, .ovfKprobeSynRecvV6,
             .ovfKretprobeSynRecvV4, .ovfKretprobeSynRecvV6,
             .ovfExitAccept, .ovfExitAccept4, .ovfFxExitAccept4: return true
        default: return false
        }
    }

    /// A return probe (kretprobe or fexit), attached after (and detached
    /// before) its entry probe, which saves what it reads or compares
    /// (bpf/overflow.bpf.h: syn_recv_args, conn_request_entry): never a
    /// return without its call's entry.
    public var isReturnProbe: Bool { section.hasPrefix("kretprobe/") || section.hasPrefix("fexit/") }

    /// When it runs (HookCadence).
    public var cadence: HookCadence { HookCadence.of(self) }
}
