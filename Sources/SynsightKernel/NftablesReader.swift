import CNftables
import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Reads the nftables ruleset of any network namespace in-process with
/// libnftables (what `nft -j list ruleset` prints), on a NamespaceReader's
/// thread: `pin` the moment a drop is decoded (the namespace may be deleted
/// right after it), `ruleset` when its record is decided. A ruleset read
/// within `ttlNs` is not read again.
public final class NftablesReader: @unchecked Sendable {
    public enum Outcome: Sendable {
        case ruleset(NftRuleset)
        /// Why the ruleset could not be read (the namespace is gone, libnftables failed, too slow).
        case unavailable(String)
    }

    let reader: NamespaceReader<UInt32, Outcome>
    /// synsight's own network namespace (the host's, normally).
    public var ownNetns: UInt32? { reader.ownNetns }

    /// `delayMs`: a deliberately slow source, for tests of the pipeline's deadlines.
    public init(ttlNs: UInt64 = 1_000_000_000, delayMs: Int = 0) {
        let delayNs = UInt64(max(0, delayMs)) * 1_000_000
        let config = NamespaceReader<UInt32, Outcome>.Config(
            thread: "synsight-nft", role: "the ruleset reader", goneConsequence: "its ruleset cannot be read",
            refreshNs: ttlNs)
        reader = NamespaceReader(config, netns: { $0 }, read: { _ in
            let outcome = Self.list()
            if delayNs > 0 { sleepNs(delayNs) }
            return outcome
        }, failed: { .unavailable($0) })
    }

    /// A drop was seen in `netns`: open it and read its ruleset now, unless a
    /// fresh one is kept. Called on the ring-buffer thread.
    public func pin(_ netns: UInt32) { reader.want(netns) }

    /// The namespace's latest ruleset read, waiting at most `timeoutNs` when
    /// there is none yet.
    public func ruleset(_ netns: UInt32, timeoutNs: UInt64) -> Outcome {
        reader.answer(netns, timeoutNs: timeoutNs) { queued in
            "the ruleset was not read within \(timeoutNs / 1_000_000) ms "
                + "(the reader is busy with \(queued) other namespace\(queued == 1 ? "" : "s"))"
        }
    }

    /// Stops the reader thread (a read in progress finishes first).
    public func stop() { reader.stop() }

    /// `list ruleset` in the current thread's namespace, as JSON (for the
    /// matcher) and as text with handles (the rule as `nft -a` prints it).
    /// A dump interrupted by a concurrent ruleset change fails: retried.
    static func list() -> Outcome {
        var lastError = "no output"
        for _ in 0..<3 {
            switch run(flags: UInt32(NFT_CTX_OUTPUT_JSON) | UInt32(NFT_CTX_OUTPUT_HANDLE)) {
            case .failure(let e):
                lastError = e.message
            case .success(let json):
                let text = try? run(flags: UInt32(NFT_CTX_OUTPUT_HANDLE)).get()
                if var rs = NftRuleset(json: json, text: text) {
                    attachIptablesSave(&rs)
                    addIptablesLegacy(&rs)
                    // IPVS (a netfilter module nft does not list): absent without ip_vs loaded.
                    rs.ipvs = ProcFS.read("/proc/thread-self/net/ip_vs").map(IPVSService.parse) ?? []
                    return .ruleset(rs)
                }
                lastError = "unparsable JSON: \(json.prefix(120))"
            }
        }
        return .unavailable("libnftables could not list the ruleset: \(lastError)")
    }

    /// nft shows an iptables-nft rule's `-m comment` and `xt match`es
    /// without their text and options: iptables-nft-save prints them, and
    /// the words `iptables -D` takes. Spawned from this thread, the tool
    /// runs in the namespace the thread has entered; only when the ruleset
    /// has iptables-nft rules.
    static func attachIptablesSave(_ rs: inout NftRuleset) {
        guard rs.hasIptablesNftRules else { return }
        for (family, tool) in Self.iptablesSave.sorted(by: { $0.key < $1.key }) {
            if let save = Subprocess.capture([tool]) { rs.attachIptablesSave(save, family: family) }
        }
    }

    /// iptables-nft-save / ip6tables-nft-save, by nft family.
    static let iptablesSave: [String: String] = {
        var save: [String: String] = [:]
        for (family, tool) in [("ip", "iptables"), ("ip6", "ip6tables")] {
            save[family] = ["/usr/sbin/\(tool)-nft-save", "/sbin/\(tool)-nft-save", "/usr/sbin/\(tool)-save"]
                .first { access($0, X_OK) == 0 }
        }
        return save
    }()

    /// iptables-legacy tables (x_tables: nft does not list them) of the
    /// namespace this thread has entered, from `iptables-legacy-save -c`
    /// spawned from this thread; only where the kernel has such a table.
    static func addIptablesLegacy(_ rs: inout NftRuleset) {
        for (family, names) in [(AddressFamily.ipv4, "ip_tables_names"), (.ipv6, "ip6_tables_names")] {
            guard let tables = ProcFS.read("/proc/thread-self/net/\(names)")?.split(separator: "\n"), !tables.isEmpty else {
                continue
            }
            let list = tables.joined(separator: ", ")
            guard let tool = legacySave[family] else {
                rs.legacyUnread.append("iptables-legacy tables (\(list)) exist but \(family == .ipv6 ? "ip6" : "i")ptables-legacy-save "
                                       + "is not installed: their rules are not checked")
                continue
            }
            guard let save = Subprocess.capture([tool, "-c"]) else {
                rs.legacyUnread.append("\(tool) -c failed: the iptables-legacy tables (\(list)) are not checked")
                continue
            }
            rs.addIptablesLegacy(save: save, family: family)
        }
    }

    /// iptables-legacy-save / ip6tables-legacy-save, or a plain
    /// iptables-save that is legacy (iptables before 1.8 has no nf_tables
    /// backend; 1.8 says which it is in its version).
    static let legacySave: [AddressFamily: String] = {
        var save: [AddressFamily: String] = [:]
        func executable(_ paths: [String]) -> String? { paths.first { access($0, X_OK) == 0 } }
        for (family, tool) in [(AddressFamily.ipv4, "iptables"), (.ipv6, "ip6tables")] {
            if let named = executable(["/usr/sbin/\(tool)-legacy-save", "/sbin/\(tool)-legacy-save"]) {
                save[family] = named
            } else if let plain = executable(["/usr/sbin/\(tool)-save", "/sbin/\(tool)-save"]),
                      let version = Subprocess.capture([plain.replacingSuffix("-save", with: ""), "--version"]),
                      !version.contains("nf_tables") {
                save[family] = plain
            }
        }
        return save
    }()

    struct ListError: Error { let message: String }

    static func run(flags: UInt32) -> Result<String, ListError> {
        guard let ctx = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            return .failure(ListError(message: "nft_ctx_new failed"))
        }
        defer { nft_ctx_free(ctx) }
        nft_ctx_output_set_flags(ctx, flags)
        _ = nft_ctx_buffer_output(ctx)
        _ = nft_ctx_buffer_error(ctx)
        let rc = nft_run_cmd_from_buffer(ctx, "list ruleset")
        let out = nft_ctx_get_output_buffer(ctx).map { String(cString: $0) } ?? ""
        guard rc == 0 else {
            let err = nft_ctx_get_error_buffer(ctx).map { String(cString: $0) } ?? "error \(rc)"
            return .failure(ListError(message: err.trimmingSuffix("\n")))
        }
        return .success(out)
    }
}

extension NftablesReader.ListError: CustomStringConvertible { var description: String { message } }

private extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) : self }
    func replacingSuffix(_ s: String, with r: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) + r : self }
}

func sleepNs(_ ns: UInt64) {
    var left = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var rest = timespec()
    while nanosleep(&left, &rest) != 0 && errno == EINTR { left = rest }
}
