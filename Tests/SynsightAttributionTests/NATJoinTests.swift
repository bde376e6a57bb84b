@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// A refusal inside a container's namespace and its local client's failed
/// connect() to a published address: joined across the DNAT by the client's
/// endpoint, with the original destination; and the wrong-port cause.
@Suite("NAT join and wrong_port")
struct NATJoinTests {
    static let natClient = Endpoint(addr: v4(198, 18, 9, 2), port: 40001)
    static let published = Endpoint(addr: v4(198, 18, 9, 1), port: 18300)
    static let translated = Endpoint(addr: v4(198, 18, 10, 2), port: 80)

    /// httpd listens on 81 in `otherNS`; the published port maps to 80.
    static func containerEngine() -> AttributionEngine {
        var e = engine()
        e.hostNetns = hostNS
        _ = e.ingest(.listen(listenerChange(at: 50_006, on: Endpoint(addr: .any4, port: 81), pid: 703, comm: "httpd",
                                            inode: 83, netns: otherNS)))
        return e
    }

    /// The client's error first, then the server side's RST (the schema suite uses it too).
    static func wrongPortBehindDNAT() -> [Record] {
        var e = containerEngine()
        var out = e.ingest(connectFailure(at: 50_007, from: natClient, to: published, pid: 555, netns: hostNS))
        out += e.ingest(rst(at: 50_008, to: translated, from: natClient, netns: otherNS))
        return out + e.finish()
    }

    @Test func clientFirstThenRefusal() throws {
        let out = Self.wrongPortBehindDNAT()
        #expect(out.count == 1, "\(out.map(\.json))")
        let r = try #require(out.first)
        #expect(r.reason == .noListener)
        #expect(r.cause?.rawValue == NoListenerCause.wrongPort.rawValue)
        #expect(r.port == 80)
        #expect(r.process?.pid == 703)
        #expect(r.client?.pid == 555)
        #expect(r.originalDestination == Self.published)
        #expect(r.evidence("nat") == .string("dnat"))
        #expect(r.hint?.contains("198.18.9.1:18300") == true && r.hint?.contains("listens on 81") == true, "\(r.hint ?? "")")
    }

    @Test func refusalFirstThenClient() throws {
        var e = Self.containerEngine()
        var out = e.ingest(rst(at: 50_008, to: Self.translated, from: Self.natClient, netns: otherNS))
        #expect(out.isEmpty)
        out += e.ingest(connectFailure(at: 50_009, from: Self.natClient, to: Self.published, pid: 556, netns: hostNS))
        let r = try #require(out.first)
        #expect(out.count == 1)
        #expect(r.client?.pid == 556)
        #expect(r.originalDestination == Self.published)
    }

    /// Loopback clients are never joined by endpoint alone (their ports repeat
    /// across namespaces); the client stays a record of its own.
    @Test func loopbackIsNotJoinedAcrossDestinations() {
        var e = Self.containerEngine()
        let lo = Endpoint(addr: v4(127, 0, 0, 1), port: 40002)
        var out = e.ingest(connectFailure(at: 1, from: lo, to: Endpoint(addr: v4(127, 0, 0, 1), port: 18300)))
        out += e.ingest(rst(at: 2, to: Endpoint(addr: v4(127, 0, 0, 1), port: 80), from: lo, netns: otherNS))
        out += e.finish()
        #expect(out.count == 2)
        #expect(out.allSatisfy { $0.originalDestination == nil })
    }

    /// The host's own namespace (dozens of listeners) never gets wrong_port.
    @Test func hostNamespaceIsNeverWrongPort() {
        var e = engine()
        e.hostNetns = hostNS
        _ = e.ingest(.listen(listenerChange(at: 1, on: Endpoint(addr: .any4, port: 22), pid: 9, comm: "sshd", inode: 1)))
        let out = e.ingest(rst(at: 2, to: Endpoint(addr: v4(127, 0, 0, 1), port: 80), from: Endpoint(addr: v4(127, 0, 0, 1), port: 5)))
            + e.finish()
        #expect(out.first?.cause?.rawValue == NoListenerCause.neverListened.rawValue)
    }

    /// A local client masqueraded on its way into the container (DNAT from
    /// 127.0.0.1, then SNAT to the bridge address): joined by its port, the
    /// refusal first (the order the kernel sees them); its port with another
    /// address in the same namespace as the client, or the same address, is not.
    @Test func masqueradedLocalClient() throws {
        let lo = Endpoint(addr: v4(127, 0, 0, 1), port: 40003)
        let loPublished = Endpoint(addr: v4(127, 0, 0, 1), port: 18300)
        let masqueraded = Endpoint(addr: v4(198, 18, 10, 1), port: 40003)
        var e = Self.containerEngine()
        var out = e.ingest(rst(at: 10, to: Self.translated, from: masqueraded, netns: otherNS))
        out += e.ingest(connectFailure(at: 11, from: lo, to: loPublished, pid: 557, netns: hostNS))
        out += e.finish()
        #expect(out.count == 1, "\(out.map(\.json))")
        let r = try #require(out.first)
        #expect(r.client?.pid == 557 && r.originalDestination == loPublished)
        #expect(r.evidence("translated_source") == Record.endpoint(masqueraded))
        #expect(r.hint?.contains("its source masqueraded to 198.18.10.1:40003") == true, "\(r.hint ?? "")")

        var same = Self.containerEngine()
        var apart = same.ingest(rst(at: 10, to: Endpoint(addr: v4(127, 0, 0, 1), port: 80), from: masqueraded, netns: hostNS))
        apart += same.ingest(connectFailure(at: 11, from: lo, to: loPublished, pid: 558, netns: hostNS))
        apart += same.finish()
        #expect(apart.count == 2 && apart.allSatisfy { $0.originalDestination == nil }, "\(apart.map(\.json))")

        // A refusal whose client address is not one of the client's namespace's: a remote
        // client that happens to use the same port, not this one masqueraded.
        struct NotLocal: ProcessResolver {
            func exe(pid: UInt32) -> String? { nil }
            func isLocalAddress(_ addr: IPAddress, netns: UInt32) -> Bool? { false }
        }
        var remote = engine(resolver: NotLocal())
        remote.hostNetns = hostNS
        var twoRecords = remote.ingest(rst(at: 10, to: Self.translated, from: masqueraded, netns: otherNS))
        twoRecords += remote.ingest(connectFailure(at: 11, from: lo, to: loPublished, pid: 559, netns: hostNS))
        twoRecords += remote.finish()
        #expect(twoRecords.count == 2 && twoRecords.allSatisfy { $0.originalDestination == nil }, "\(twoRecords.map(\.json))")
    }

    /// Masqueraded with `--random-fully`: the port changes too. The one
    /// refusal that could be the client's, in the window, is joined; two
    /// candidates, or one older than the window, join nothing.
    @Test func masqueradedRandomFully() throws {
        let lo = Endpoint(addr: v4(127, 0, 0, 1), port: 40004)
        let loPublished = Endpoint(addr: v4(127, 0, 0, 1), port: 18300)
        let masqueraded = Endpoint(addr: v4(198, 18, 10, 1), port: 61_234)
        var e = Self.containerEngine()
        var out = e.ingest(rst(at: 10, to: Self.translated, from: masqueraded, netns: otherNS))
        out += e.ingest(connectFailure(at: 11, from: lo, to: loPublished, pid: 560, netns: hostNS))
        out += e.finish()
        #expect(out.count == 1, "\(out.map(\.json))")
        let r = try #require(out.first)
        #expect(r.client?.pid == 560 && r.originalDestination == loPublished)
        #expect(r.evidence("translated_source") == Record.endpoint(masqueraded))
        #expect(r.evidence("nat_match") == .string("only_candidate"))

        var two = Self.containerEngine()
        var apart = two.ingest(rst(at: 10, to: Self.translated, from: masqueraded, netns: otherNS))
        apart += two.ingest(rst(at: 12, to: Self.translated, from: Endpoint(addr: masqueraded.addr, port: 61_999), netns: otherNS))
        apart += two.ingest(connectFailure(at: 13, from: lo, to: loPublished, pid: 561, netns: hostNS))
        apart += two.finish()
        #expect(apart.count == 3 && apart.allSatisfy { $0.originalDestination == nil }, "\(apart.map(\.json))")

        var late = Self.containerEngine()
        var old = late.ingest(rst(at: 10, to: Self.translated, from: masqueraded, netns: otherNS))
        old += late.ingest(connectFailure(at: 10 + 300_000_000, from: lo, to: loPublished, pid: 562, netns: hostNS))
        old += late.finish()
        #expect(old.count == 2 && old.allSatisfy { $0.originalDestination == nil }, "\(old.map(\.json))")
    }
}
