import SynsightBase
/// The evidence of a `no_listener` record, typed: attribution fills it, explain
/// reads it, and `fields` encodes it to the same ordered JSON object the schema
/// (`$defs/reason_no_listener`) describes. A field left nil (or at its default)
/// is not written, exactly as before.
public struct NoListenerEvidence: Sendable, Hashable {
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
    /// The kernel hook that saw the refusal.
    public var hook: String?

    public init() {}

    /// Reads the fields it knows from a record's evidence; others are ignored.
    public init(_ fields: [(String, JSONValue)]) {
        for (key, value) in fields {
            switch EvidenceKey(rawValue: key) {
            case .listeners?: if case .array(let a) = value { listeners = a }
            case .listenedOn?: listenedOn = value.stringValue
            case .closedAt?: closedAt = value.stringValue
            case .closedAtExact?: if case .bool(let b) = value { closedAtExact = b }
            case .exitedAt?: exitedAt = value.stringValue
            case .signal?: signal = value.intValue
            case .signalName?: signalName = value.stringValue
            case .coreDumped?: if case .bool(let b) = value { coreDumped = b }
            case .exitStatus?: exitStatus = value.intValue
            case .closedBy?: closedBy = value
            case .previous?: previous = value
            case .hook?: hook = value.stringValue
            default: break
            }
        }
    }

    /// The evidence object's fields, in contract order.
    public var fields: [(String, JSONValue)] {
        var f: [(String, JSONValue)] = []
        func add(_ key: EvidenceKey, _ value: JSONValue?) { if let value { f.append((key.rawValue, value)) } }
        add(.listeners, listeners.map { .array($0) })
        add(.listenedOn, listenedOn.map { .string($0) })
        add(.closedAt, closedAt.map { .string($0) })
        add(.closedAtExact, closedAtExact ? nil : .bool(false))
        add(.exitedAt, exitedAt.map { .string($0) })
        add(.signal, signal.map { .int($0) })
        add(.signalName, signalName.map { .string($0) })
        add(.coreDumped, coreDumped ? .bool(true) : nil)
        add(.exitStatus, exitStatus.map { .int($0) })
        add(.closedBy, closedBy)
        add(.previous, previous)
        add(.hook, hook.map { .string($0) })
        return f
    }
}

extension Record {
    /// The typed evidence of a `no_listener` record; nil for any other reason.
    public var noListenerEvidence: NoListenerEvidence? {
        reason == .noListener ? NoListenerEvidence(evidence) : nil
    }
}
