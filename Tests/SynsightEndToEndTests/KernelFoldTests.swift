import Foundation
import Testing

/// Storms folded in the kernel (bpf/fold.bpf.h): a real refusal storm on a
/// closed loopback port inside a namespace this test creates. Past the first
/// few refusals per CPU and second the BPF side only counts; the counts come
/// back as `summary` records, so every refusal is accounted for exactly
/// (the namespace's TcpOutRsts and the client's ECONNREFUSED count) while far
/// fewer records cross the ring buffer.
@Suite("storms folded in the kernel, end to end", .serialized, .enabled(if: Privileged.enabled))
struct KernelFoldTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// Refuses connections to `port` for `seconds`; returns (refused, the
    /// namespace's TcpOutRsts during the storm).
    func storm(_ ns: NetNS, port: Int, seconds: Double) throws -> (refused: Int, resets: Int) {
        let out = try sh(["ip", "netns", "exec", ns.name, "/usr/bin/python3", "-c", """
            import socket, time
            def rsts():
                lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Tcp:")]
                return int(lines[1][lines[0].index("OutRsts")])
            before = rsts()
            n = other = 0
            end = time.monotonic() + \(seconds)
            while time.monotonic() < end:
                for _ in range(100):
                    s = socket.socket()
                    try: s.connect(("127.0.0.1", \(port)))
                    except ConnectionRefusedError: n += 1
                    except OSError: other += 1
                    s.close()
            print(n, rsts() - before, other)
            """])
        let f = out.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(f.count == 3 && f[2] == 0, "generator: \(out)")
        return (f[0], f[1])
    }

    struct Tally {
        var individual = 0
        var kernelFolded = 0
        var kernelSummaries: [JSONRecord] = []
        var userFolded = 0
        var clientFailures = 0
        var lost = 0
        var accounted: Int { individual + kernelFolded + userFolded }
    }

    func tally(_ records: [JSONRecord], port: Int) -> Tally {
        var t = Tally()
        for r in records {
            if r.string("kind") == "lost" { t.lost += r.int("count") ?? 0 }
            guard r.int("port") == port else { continue }
            switch r.string("kind") {
            case "refusal": t.individual += 1
            case "connect_failure": t.clientFailures += 1
            case "summary" where r.object("evidence")?["folded_in"] as? String == "kernel":
                t.kernelFolded += r.int("count") ?? 0
                t.kernelSummaries.append(r)
            case "summary": t.userFolded += r.int("count") ?? 0
            default: break
            }
        }
        return t
    }

    @Test("trace --fold 5: every refusal of a storm is accounted for (TcpOutRsts = individual + folded), 0 lost, most folded in the kernel with their local clients")
    func foldedInKernel() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession(["--fold", "5", "--port", String(port)])
        let seconds = 2.0
        let s = try storm(ns, port: port, seconds: seconds)
        usleep(2_500_000)  // past the client-join window and the next read of the kernel's counts
        let summary = trace.stop()
        let t = tally(trace.records, port: port)
        #expect(s.refused == s.resets, "client refused \(s.refused), namespace sent \(s.resets) RSTs")
        #expect(t.accounted == s.resets, "individual \(t.individual) + kernel \(t.kernelFolded) + user \(t.userFolded) != \(s.resets)")
        #expect(t.lost == 0)
        #expect(t.clientFailures == 0, "a folded refusal's client was reported on its own")
        // Few records crossed the ring buffer: at most 5 per CPU and second in the kernel.
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let bound = 5 * cpus * (Int(seconds) + 2)
        #expect(t.individual + t.userFolded <= bound, "\(t.individual + t.userFolded) refusals crossed the ring buffer (bound \(bound))")
        #expect(t.kernelFolded >= s.resets - bound && t.kernelFolded > 0)
        // The summaries' attributed fields are sc_closed_fold's (kernel
        // matrix); here the accounting under a 2 s storm: a client's error
        // may be counted in the read after its RST's (a read falls between
        // the two), so per record within one per CPU.
        for r in t.kernelSummaries {
            let local = r.object("evidence")?["local_clients"] as? Int ?? -1
            #expect(abs(local - (r.int("count") ?? 0)) <= cpus, "\(r.line)")
        }
        // Over the storm every folded refusal's local client is counted.
        let localClients = t.kernelSummaries.reduce(0) { $0 + (($1.object("evidence")?["local_clients"] as? Int) ?? 0) }
        #expect(localClients == t.kernelFolded, "local clients \(localClients), folded \(t.kernelFolded)")
        #expect(summary.contains("synsight: \(s.resets) events in "), "\(summary)")
        #expect(summary.contains("0 events lost"), "\(summary)")
    }

    @Test("--no-kernel-fold: every refusal crosses the ring buffer and is folded in user space, still exactly")
    func userSpaceOnly() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession(["--fold", "5", "--no-kernel-fold", "--port", String(port)])
        let s = try storm(ns, port: port, seconds: 1)
        usleep(1_500_000)
        let summary = trace.stop()
        let t = tally(trace.records, port: port)
        #expect(t.kernelFolded == 0 && t.kernelSummaries.isEmpty)
        #expect(t.userFolded > 0)
        if t.lost == 0 {
            #expect(t.accounted == s.resets, "individual \(t.individual) + user \(t.userFolded) != \(s.resets)")
            #expect(summary.contains("synsight: \(s.resets) events in "), "\(summary)")
        } else {
            // Two events per refusal (the RST and the client's error) cross
            // the ring buffer here; on a loaded CI machine (2 CPUs, the
            // suites in parallel) the reader fell behind once: 9,617 lost of
            // about 124,000. Then every RST is accounted for or counted lost,
            // never more, and the loss is said.
            #expect(t.accounted < s.resets && t.accounted + t.lost >= s.resets,
                    "individual \(t.individual) + user \(t.userFolded), lost \(t.lost), RSTs \(s.resets)")
            #expect(summary.contains("synsight: \(t.accounted) events in ") && summary.contains(", \(t.lost) events lost"), "\(summary)")
        }
    }
}
