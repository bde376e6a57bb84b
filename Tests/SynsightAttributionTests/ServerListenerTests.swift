@testable import SynsightAttribution
@testable import SynsightModel
import SynsightTestSupport
import Testing

/// Which listener a dropped handshake segment was for: the server end must
/// be in the drop's namespace, not merely a listener on the same port.
@Suite("the listener of a dropped handshake segment")
struct ServerListenerTests {
    let here = v4(198, 18, 40, 1), remote = v4(203, 0, 113, 5)

    /// An engine that knows nginx listening on *:443 in namespace 77.
    func engine443() -> AttributionEngine {
        var e = engine()
        _ = e.ingest(.listen(listenerChange(at: 10, on: Endpoint(addr: v4(0, 0, 0, 0), port: 443), pid: 500, comm: "nginx",
                                            inode: 11, netns: 77)))
        return e
    }

    func pid(_ e: AttributionEngine, server: IPAddress, fromServer: Bool, direction: String) -> UInt32? {
        e.serverListener(port: 443, netns: 77, family: .ipv4, server: server, fromServer: fromServer, direction: direction)?.pid
    }

    @Test("a SYN arriving and a SYN-ACK leaving are the local listener's; to loopback either way too")
    func itsOwn() {
        let e = engine443()
        #expect(pid(e, server: here, fromServer: false, direction: "ingress") == 500)
        #expect(pid(e, server: here, fromServer: true, direction: "egress") == 500)
        #expect(pid(e, server: v4(127, 0, 0, 1), fromServer: false, direction: "egress") == 500)
    }

    @Test("a SYN leaving for another host, a SYN-ACK arriving from one, a forwarded segment: not the listener on the same port")
    func notItsOwn() {
        let e = engine443()
        #expect(pid(e, server: remote, fromServer: false, direction: "egress") == nil)
        #expect(pid(e, server: remote, fromServer: true, direction: "ingress") == nil)
        #expect(pid(e, server: here, fromServer: false, direction: "forward") == nil)
        // Another namespace's listener never.
        #expect(e.serverListener(port: 443, netns: 78, family: .ipv4, server: here, fromServer: false, direction: "ingress") == nil)
    }
}
