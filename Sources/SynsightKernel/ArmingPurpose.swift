/// What a HookArming arms programs for: its watch's period, how long it
/// waits before disarming, and how `doctor` and the log say it.
public struct ArmingPurpose: Sendable {
    var threadName: String
    /// How often the watch runs.
    var periodNs: UInt64
    /// How long the watch must return zero before the programs are detached.
    var defaultQuietNs: UInt64
    /// Logged when the programs are attached, and detached.
    var armLog: String
    var quietLog: String

    /// The overflow programs, while a listener needs them. A queue that
    /// fills is usually full for seconds (a stalled server, a flood), so
    /// 250 ms arms the per-SYN program before most of an incident's drops.
    /// The sweep loops over a dense copy of the registry's keys, rebuilt by
    /// a walk of its hash map's 16,384 buckets only when a listener came or
    /// went (bpf/listeners.bpf.h, listen_dense): about 9 µs a sweep on an
    /// idle host (BPF statistics on, this host, 2026-12-07; the walk alone
    /// took 0.37 ms, which every sweep paid before), so 4 a second is
    /// nothing measurable, and nothing per connection. Detached after 20 s without a full
    /// queue or a drop: an incident that pauses for a few seconds (clients
    /// backing off: SYN retransmits at 1, 3, 7 s) keeps its SYNs seen one
    /// by one.
    public static let overflow = ArmingPurpose(
        threadName: "synsight-ovf", periodNs: 250_000_000, defaultQuietNs: 20_000_000_000,
        armLog: "a listener's queue is full or its drop counter moved",
        quietLog: "no listener queue full or drop")

    /// tcp_destroy_sock, while a connecting socket's SYN is unanswered. A
    /// SYN is first retransmitted after 1 s; the watch runs every 100 ms,
    /// so an application that gives up 1.1 s or more after connect() is
    /// seen (curl --connect-timeout, dialers' and proxies' connect timeouts
    /// are seconds). It walks tmo_pending (4,096 entries at most, usually a
    /// handful). Detached 2 s after the last connecting socket's outcome.
    public static let abandonedConnects = ArmingPurpose(
        threadName: "synsight-tmo", periodNs: 100_000_000, defaultQuietNs: 2_000_000_000,
        armLog: "a connect()'s SYN is unanswered", quietLog: "no unanswered connect()")

    public var periodText: String { "\(periodNs / 1_000_000) ms" }
    public var quietText: String { "\(defaultQuietNs / 1_000_000_000) s" }

    /// What arming the overflow programs means, as `doctor` says it (HookCadence.armedOnAnomaly).
    static var overflowArmedText: String {
        "armed on anomaly: attached only while a listener's queue is full or its drop counter moves (a sweep every "
            + "\(overflow.periodText)), detached after \(overflow.quietText) quiet; drops before it is attached are counted from the "
            + "listener's sk_drops (one record per listener and sweep, no client)"
    }

    /// What is lost without `p`.
    static func without(_ p: BPFProgram) -> String {
        switch p {
        case .ovfConsumeSkb, .ovfFentryConnRequest, .ovfKprobeConnRequest:
            return "SYN-stage overflows are counted from the listeners' drop counters only"
        case .ovfExitAccept, .ovfExitAccept4, .ovfFxExitAccept4:
            return "accept() failures (EMFILE, ENFILE) are not seen"
        case .ovfFexitConnRequest, .ovfKretprobeConnRequest:
            return "SYNs a listener leaves unanswered past its queue checks (no_route_back, the SYN backlog's reserve) are not seen"
        case .tmoDestroySock:
            return "a connect() its application gives up on, unanswered, is not seen (only the kernel's ETIMEDOUT is)"
        default:
            return "ACK-stage overflows are counted from the listeners' drop counters only"
        }
    }
}
