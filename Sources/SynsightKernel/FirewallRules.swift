import Glibc
import SynsightCore

/// Reads the nftables ruleset of a network namespace (read-only: `nft -j
/// list ruleset` and `nft -a list ruleset`, run inside the namespace with
/// nsenter) and matches it against dropped packets. iptables-nft rules are
/// nft rules too (tables `ip filter` / `ip6 filter`).
///
/// Rulesets are cached per namespace for `ttlNs` (counters move, rules
/// change) and at most `maxEntries` namespaces are remembered. Used from the
/// one consumer thread only.
public final class NftRuleSource: FirewallRuleSource {
    struct Entry {
        var ruleset: NftRuleset?
        var fetchedAt: UInt64
    }

    let ttlNs: UInt64
    let maxEntries = 64
    var cache: [UInt32: Entry] = [:]
    let ownNetns: UInt32?
    let nft: String
    let nsenter: String
    /// iptables-nft-save / ip6tables-nft-save: nft shows an iptables rule's
    /// `-m comment` only as a match without its text.
    let iptablesSave: [String: String]

    public init(ttlNs: UInt64 = 1_000_000_000) {
        self.ttlNs = ttlNs
        ownNetns = ProcFS.nsInode("/proc/self/ns/net")
        nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first { access($0, X_OK) == 0 } ?? "nft"
        nsenter = ["/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter"].first { access($0, X_OK) == 0 } ?? "nsenter"
        var save: [String: String] = [:]
        for (family, tool) in [("ip", "iptables"), ("ip6", "ip6tables")] {
            save[family] = ["/usr/sbin/\(tool)-nft-save", "/sbin/\(tool)-nft-save", "/usr/sbin/\(tool)-save"]
                .first { access($0, X_OK) == 0 }
        }
        iptablesSave = save
    }

    public func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
        guard let rs = ruleset(netns: packet.netns) else { return nil }
        let all = rs.candidates(for: packet)
        // Among equally good candidates, a rule whose counter moved is the likelier one.
        let counted = all.filter { ($0.packets ?? 0) > 0 }
        let method = all.count > 1 && !counted.isEmpty && counted.count < all.count ? "ruleset_match+counter" : "ruleset_match"
        var ordered = all
        if let first = all.first, !counted.isEmpty {
            let sameRank = all.filter { $0.exact == first.exact && $0.verdict != .policyDrop }
            let rest = all.filter { !($0.exact == first.exact && $0.verdict != .policyDrop) }
            ordered = sameRank.filter { ($0.packets ?? 0) > 0 } + sameRank.filter { ($0.packets ?? 0) == 0 } + rest
        }
        return FirewallRuleLookup(candidates: ordered, method: method)
    }

    func ruleset(netns: UInt32) -> NftRuleset? {
        let now = bootTimeNow()
        if let e = cache[netns], e.fetchedAt + ttlNs > now {
            if e.ruleset == nil, ProcessEnv.debug { debugLog("synsight: cached: no ruleset for netns \(netns)") }
            return e.ruleset
        }
        if cache.count >= maxEntries {
            cache = cache.filter { $0.value.fetchedAt + ttlNs > now }
            if cache.count >= maxEntries { cache.removeAll() }
        }
        let rs = fetch(netns: netns)
        cache[netns] = Entry(ruleset: rs, fetchedAt: now)
        return rs
    }

    /// A path that enters the namespace: a named one (/run/netns), else a
    /// process living in it. nil when it is ours (no nsenter needed).
    func nsPath(_ netns: UInt32) -> String?? {
        if netns == ownNetns || netns == 0 { return .some(nil) }
        // synsight may run in a mount namespace of its own (TraceFS.ensure):
        // a namespace named after it started is found through PID 1's root.
        for dir in ["/run/netns", "/var/run/netns", "/proc/1/root/run/netns"] {
            for name in ProcFS.list(dir) where ProcFS.nsInode("\(dir)/\(name)") == netns {
                return "\(dir)/\(name)"
            }
        }
        for pid in ProcFS.pids() where ProcFS.nsInode("/proc/\(pid)/ns/net") == netns {
            return "/proc/\(pid)/ns/net"
        }
        return nil
    }

    func fetch(netns: UInt32) -> NftRuleset? {
        guard let path = nsPath(netns) else {
            if ProcessEnv.debug { debugLog("synsight: network namespace \(netns) not found in /run/netns nor /proc/*/ns/net") }
            return nil
        }
        func run(_ args: [String], tool: String? = nil) -> String? {
            let tool = tool ?? nft
            if let path { return Subprocess.capture([nsenter, "--net=\(path)", "--", tool] + args) }
            return Subprocess.capture([tool] + args)
        }
        // A dump can be interrupted by a concurrent ruleset change (NLM_F_DUMP_INTR): retry.
        for _ in 0..<3 {
            guard let json = run(["-j", "list", "ruleset"]) else { continue }
            let text = run(["-a", "list", "ruleset"])
            if var rs = NftRuleset(json: json, text: text) {
                if rs.hasIptablesComments {
                    for (family, tool) in iptablesSave.sorted(by: { $0.key < $1.key }) {
                        if let save = run([], tool: tool) { rs.attachIptablesComments(save: save, family: family) }
                    }
                }
                return rs
            }
            if ProcessEnv.debug { debugLog("synsight: unparsable nft -j output for netns \(netns): \(json.prefix(200))") }
        }
        return nil
    }
}

/// Runs a command and returns its standard output (nil if it failed).
enum Subprocess {
    static func capture(_ argv: [String], limit: Int = 8 << 20) -> String? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        // Close-on-exec: the child gets only the dup2'ed copy as stdout.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        // A fixed environment: the tool runs as root, inherit nothing.
        var cenv: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), strdup("LC_ALL=C"), nil]
        defer { for p in cargs + cenv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, &cargs, &cenv)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            if ProcessEnv.debug { debugLog("synsight: spawning \(argv[0]) failed: \(rc)") }
            return nil
        }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = buf.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else {
            if ProcessEnv.debug { debugLog("synsight: `\(argv.joined(separator: " "))` failed: status \(status)") }
            return nil
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SYNSIGHT_DEBUG=1 reports rule-lookup failures on stderr.
enum ProcessEnv {
    static let debug: Bool = getenv("SYNSIGHT_DEBUG").map { String(cString: $0) == "1" } ?? false
}

func debugLog(_ line: String) {
    let l = line + "\n"
    _ = l.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}
