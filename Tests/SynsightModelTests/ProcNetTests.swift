@testable import SynsightBase
@testable import SynsightModel
import Testing
import SynsightTestSupport

// Captured from a real machine, with an ESTABLISHED line and malformed lines added.
let procNetTCP = """
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 31337 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 22222 1 0000000000000000 100 0 0 10 5
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 44444 1 0000000000000000 20 4 30 10 -1
   3: 0A00000A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 4294967296 1 0000000000000000 100 0 0 10 0
   4: garbage
   5: ZZZZZZZZ:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   6: 0100007F:GGGG 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   7: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  notauid   0 1 1 0000000000000000 100 0 0 10 0
   8: 0100007F:1F90 00000000:0000 0A 00000000
"""

let procNetTCP6 = """
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 55555 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 66666 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77777 1 0000000000000000 100 0 0 10 0
   3: B80D0120000000000000000001000000:01BB B80D0120000000000000000002000000:D431 01 00000000:00000000 02:000AFC4F 00000000   998        0 88888 1 0000000000000000 20 4 31 10 -1
   4: 0000000000000000000000000100000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0

"""

@Suite("ProcNet")
struct ProcNetTests {
    @Test func parsesIPv4() throws {
        let socks = ProcNet.parse(procNetTCP, family: .ipv4)
        #expect(socks.count == 4)
        try #require(socks.count == 4)

        #expect(socks[0].family == .ipv4)
        #expect(socks[0].local.description == "127.0.0.1:8080")
        #expect(socks[0].local.addr == IPAddress(v4: 127, 0, 0, 1))
        #expect(socks[0].remote.description == "0.0.0.0:0")
        #expect(socks[0].state == ProcNetSocket.listenState)
        #expect(socks[0].uid == 1000)
        #expect(socks[0].inode == 31337)

        #expect(socks[1].local.description == "0.0.0.0:22")
        #expect(socks[1].local.addr.isUnspecified)
        #expect(socks[1].state == 0x0A)
        #expect(socks[1].uid == 0)
        #expect(socks[1].inode == 22222)

        // ESTABLISHED is parsed (state 1); callers filter by state.
        #expect(socks[2].state == 0x01)
        #expect(socks[2].local.description == "127.0.0.1:8080")
        #expect(socks[2].remote.description == "127.0.0.1:50000")
        #expect(socks[2].inode == 44444)

        #expect(socks[3].local.description == "10.0.0.10:80")
        #expect(socks[3].uid == 33)
        #expect(socks[3].inode == 4_294_967_296)

        let listening = socks.filter { $0.state == ProcNetSocket.listenState }
        #expect(listening.map(\.inode) == [31337, 22222, 4_294_967_296])
    }

    @Test func parsesIPv6() throws {
        let socks = ProcNet.parse(procNetTCP6, family: .ipv6)
        #expect(socks.count == 4)
        try #require(socks.count == 4)

        #expect(socks[0].family == .ipv6)
        #expect(socks[0].local.addr.description == "::1")
        #expect(socks[0].local.addr.isLoopback)
        #expect(socks[0].local.port == 8080)
        #expect(socks[0].state == ProcNetSocket.listenState)
        #expect(socks[0].uid == 101)
        #expect(socks[0].inode == 55555)

        #expect(socks[1].local.addr == IPAddress.any6)
        #expect(socks[1].local.description == "[::]:80")
        #expect(socks[1].inode == 66666)

        // An AF_INET6 socket bound to an IPv4-mapped address prints as IPv4.
        #expect(socks[2].local.addr == IPAddress(v4: 127, 0, 0, 1))
        #expect(socks[2].local.port == 631)

        #expect(socks[3].state == 0x01)
        #expect(socks[3].local.description == "[2001:db8::1]:443")
        #expect(socks[3].remote.description == "[2001:db8::2]:54321")
        #expect(socks[3].uid == 998)
        #expect(socks[3].inode == 88888)
    }

    @Test func wrongFamilyParsesNothing() {
        #expect(ProcNet.parse(procNetTCP, family: .ipv6).isEmpty)
        #expect(ProcNet.parse(procNetTCP6, family: .ipv4).isEmpty)
    }

    @Test func headerOnlyOrEmpty() {
        #expect(ProcNet.parse("", family: .ipv4).isEmpty)
        #expect(ProcNet.parse("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
                              family: .ipv4).isEmpty)
    }

    @Test func singleLine() throws {
        let line = "   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 123 1 0 100 0 0 10 0"
        let s = try #require(ProcNet.parseLine(Substring(line), family: .ipv4))
        #expect(s.local.description == "127.0.0.1:3306")
        #expect(s.uid == 999)
        #expect(s.inode == 123)
        #expect(ProcNet.parseLine("   0: 0100007F:0CEA", family: .ipv4) == nil)
    }
}
