import SynsightBase
/// The evidence of a `no_listener` record, typed: attribution fills it, explain
/// reads it, and `fields` (ReasonEvidence) encodes it to the same ordered JSON
/// object the schema (`$defs/reason_no_listener`) describes.
public struct NoListenerEvidence: ReasonEvidence {
    /// Listeners on the port that did not take the SYN (other address or family,
    /// other port or namespace), as `ListenerInfo.json` objects.
    public var listeners: [JSONValue]?
    /// The last listener's address, and when it was found closed (RFC 3339).
    public var listenedOn: String?
    public var closedAt: String?
    /// false: `closedAt` is when the close was noticed (no state-change hook).
    public var closedAtExact = true
    /// When the last listener exited (RFC 3339), and how.
    public var exitedAt: String?
    public var signal: Int64?
    public var signalName: String?
    public var coreDumped = false
    public var exitStatus: Int64?
    /// Another process that closed the listening socket (`ProcessRef.json`).
    public var closedBy: JSONValue?
    /// The process that listened before a restart (`ProcessRef.json`).
    public var previous: JSONValue?
    /// The parent that started it again, where no unit, container or pod
    /// groups the service (`ProcessRef.json`: a supervisor, a shell loop).
    public var restartedBy: JSONValue?
    /// The kernel hook that saw the refusal.
    public var hook: String?
    /// Where the SYN came in (`NetDevice.json`): bound_to_other_device, other_vrf.
    public var synDevice: JSONValue?
    public var synVRF: JSONValue?
    /// publisher_stopped: the container that publishes the port (`DockerPortBinding.json`).
    public var container: JSONValue?
    /// starting: when the namespace's first process started (RFC 3339), and
    /// how long before the SYN (ms).
    public var startedAt: String?
    public var startupMs: Int64?

    /// How recently a container or pod must have started for a refusal in
    /// its namespace, where nothing listens yet, to be `starting`: longer
    /// than most services take to listen (JVMs, databases initialising).
    public static let startingWindowNs: UInt64 = 120_000_000_000

    public init() {}

    public static let reasons: Set<Reason> = [.noListener]

    public static let layout: [EvidenceField<NoListenerEvidence>] = [
        .array(.listeners, \.listeners), .string(.listenedOn, \.listenedOn), .string(.closedAt, \.closedAt),
        .flag(.closedAtExact, \.closedAtExact, default: true), .string(.exitedAt, \.exitedAt),
        .int(.signal, \.signal), .string(.signalName, \.signalName), .flag(.coreDumped, \.coreDumped, default: false),
        .int(.exitStatus, \.exitStatus), .value(.closedBy, \.closedBy), .value(.previous, \.previous),
        .value(.restartedBy, \.restartedBy), .string(.hook, \.hook),
        .value(.synDevice, \.synDevice), .value(.synVRF, \.synVRF), .value(.container, \.container),
        .string(.startedAt, \.startedAt), .int(.startupMs, \.startupMs),
    ]
}

extension Record {
    /// The typed evidence of a `no_listener` record; nil for any other reason.
    public var noListenerEvidence: NoListenerEvidence? {
        evidence(as: NoListenerEvidence.self)
    }
}
