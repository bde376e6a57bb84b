import SynsightBase
import SynsightModel

/// Injected resets (issue 17): the RST that refused a local connect() is read
/// in tcp_reset (SYN_EV_CONNECT_RESET, bpf/resets.bpf.h) with its TTL and the
/// peer's baseline, before the client's ECONNREFUSED. It is kept by 4-tuple
/// and added, as evidence `reset`, to the record the refusal becomes:
/// - `unknown`/`connection_refused` (the peer is not on this host): when the
///   hop counts differ the cause becomes `injected_reset_suspected` and the
///   hint says what to check;
/// - `no_listener` or `firewall_reject` with the local client joined (the
///   server or the rejecting firewall is on this host): the evidence only,
///   and a hint sentence when they differ (a firewall rule that rejects for a
///   routed connection is itself such a middlebox, named by its record).

/// The engine's reset state (one stored property of `AttributionEngine`).
public struct ResetTTLState {
    /// RSTs read, waiting for the record of their refusal.
    var notes = ExpiringMap<JoinKey, ConnectReset>()

    static let maxEntries = 4096
    /// Longer than any join the refusal's record waits for (the client's
    /// join window, a firewall decision).
    static let keepNs: UInt64 = 10_000_000_000

    public init() {}
}

extension AttributionEngine {
    /// A RST that refused a local connect(): kept for its refusal's record.
    mutating func noteConnectReset(_ r: ConnectReset) -> [Record] {
        if resets.notes.count >= ResetTTLState.maxEntries { _ = resets.notes.removeOldest() }
        resets.notes.insert(r, forKey: JoinKey(client: r.local, server: r.remote), deadline: r.ts &+ ResetTTLState.keepNs)
        return []
    }

    /// Adds evidence `reset` to the refusals among `records` whose RST was read.
    /// Free when no RST is waiting (the common case).
    mutating func annotateResets(_ records: [Record]) -> [Record] {
        guard !resets.notes.isEmpty, !records.isEmpty else { return records }
        return records.map { annotateReset($0) }
    }

    mutating func expireResets(now: UInt64) {
        if !resets.notes.isEmpty { _ = resets.notes.expire(now: now) }
    }

    /// The RST of `record`'s refusal, taken out of the notes: the client is
    /// `local` in its own record, `remote` in a server-side or firewall record.
    mutating func takeReset(for record: Record) -> ConnectReset? {
        guard let reason = record.reason, let local = record.local, let remote = record.remote else { return nil }
        switch reason {
        case .unknown where record.cause == .unknown(.connectionRefused):
            return resets.notes.removeValue(forKey: JoinKey(client: local, server: remote))
        case .noListener, .firewallReject:
            guard record.client != nil else { return nil }
            for server in [record.originalDestination, local].compactMap({ $0 }) {
                if let r = resets.notes.removeValue(forKey: JoinKey(client: remote, server: server)) { return r }
            }
            return nil
        default:
            return nil
        }
    }

    mutating func annotateReset(_ record: Record) -> Record {
        guard let reset = takeReset(for: record) else { return record }
        var r = record
        let ev = Self.resetEvidence(reset)
        r.addEvidence(.reset, ev.json)
        guard ev.likelyMiddlebox else { return r }
        let sentence = ev.sentence(peer: reset.remote.addr)
        if r.reason == .unknown {
            r.cause = .unknown(.injectedResetSuspected)
            let who = r.process.map { $0.label + "'s" } ?? "a local"
            let advice = Advice.for(reason: .unknown, cause: r.cause,
                                    facts: Advice.Facts(port: reset.remote.port, address: reset.remote.addr, family: reset.family))
            r.hint = "a reset refused \(who) connect() to \(reset.remote), but \(sentence): " + advice.fix
        } else {
            r.hint = (r.hint.map { $0 + "; " } ?? "") + "\(sentence): the reset was not sent from where the peer's packets come from "
                + "(a likely middlebox: this record's rule, or another box on the path)"
        }
        return r
    }

    /// The typed evidence of one RST.
    static func resetEvidence(_ reset: ConnectReset) -> ResetTTLEvidence {
        let age = reset.baseline.map { reset.ts >= $0.lastTs ? Int64((reset.ts - $0.lastTs) / 1_000_000) : 0 }
        return ResetTTLEvidence(ttl: reset.ttl, family: reset.family, baseline: reset.baseline, baselineAgeMs: age,
                                hook: reset.hook.name)
    }
}
