import CSynsightABI
@testable import SynsightBase
@testable import SynsightModel
import Testing
import SynsightTestSupport

// Records are built by filling the very C structs the BPF side fills
// (imported from bpf/synsight_abi.h) and taking their bytes, so a layout
// change shows up here exactly as it would on the wire.

// MARK: - Fixture helpers












// MARK: - Layout

@Suite("ABI layout")
struct ABILayoutTests {
    @Test func sizesMatchTheHeaderAssertions() {
        #expect(MemoryLayout<syn_hdr>.size == 16)
        #expect(MemoryLayout<syn_tuple>.size == 40)
        #expect(MemoryLayout<syn_task>.size == 40)
        #expect(MemoryLayout<syn_dev>.size == 24)
        #expect(MemoryLayout<syn_ev_no_socket_rst>.size == 136)
        #expect(MemoryLayout<syn_ev_listen>.size == 136)
        #expect(MemoryLayout<syn_seed_listener>.size == 40)
        #expect(MemoryLayout<syn_ev_exit>.size == 64)
        #expect(MemoryLayout<syn_ev_connect_error>.size == 120)
        #expect(MemoryLayout<syn_ev_pkt_drop>.size == 144)
        #expect(EventDecoder.abiVersion == 1)
    }
}

// MARK: - Successful decoding

@Suite("EventDecoder: records")
struct DecodeRecordTests {
    @Test func noSocketResetIPv4() throws {
        let event = try EventDecoder.decode(rstRecord(isn: 0xA1B2_C3D4))
        guard case .noSocketReset(let r) = event else {
            Issue.record("expected noSocketReset, got \(event)")
            return
        }
        #expect(r.ts == 123_456_789_000)
        #expect(event.ts == 123_456_789_000)
        #expect(r.family == .ipv4)
        #expect(r.local.addr == IPAddress(v4: 10, 0, 0, 1))
        #expect(r.local.addr.description == "10.0.0.1")
        #expect(r.local.port == 8080)
        #expect(r.remote.addr.description == "10.0.0.2")
        #expect(r.remote.port == 54321)
        #expect(r.local.description == "10.0.0.1:8080")
        #expect(r.netns == 4_026_531_840)
        #expect(r.hook == .kfreeSkb)
        #expect(r.tcpFlags == 0x02)
        #expect(r.isn == 0xA1B2_C3D4)
    }

    @Test func noSocketResetIPv6() throws {
        let bytes = rstRecord(local: v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), lport: 443,
                              remote: v6(0xfe80, 0, 0, 0, 0x1234, 0x56ff, 0xfe78, 0x9abc), rport: 61000,
                              family: 10, netns: 7, source: 1, flags: 0x12)
        let event = try EventDecoder.decode(bytes)
        guard case .noSocketReset(let r) = event else {
            Issue.record("expected noSocketReset, got \(event)")
            return
        }
        #expect(r.family == .ipv6)
        #expect(r.local.addr.description == "2001:db8::1")
        #expect(r.local.port == 443)
        #expect(r.local.description == "[2001:db8::1]:443")
        #expect(r.remote.addr.description == "fe80::1234:56ff:fe78:9abc")
        #expect(r.remote.port == 61000)
        #expect(r.netns == 7)
        #expect(r.hook == .tcpSendReset)
        #expect(r.tcpFlags == 0x12)
    }

    @Test(arguments: [(UInt8(1), ResetHook.tcpSendReset), (2, .kfreeSkb), (3, .fentry), (4, .kprobe)])
    func resetSourceMapsToHook(source: UInt8, hook: ResetHook) throws {
        guard case .noSocketReset(let r) = try EventDecoder.decode(rstRecord(source: source)) else {
            Issue.record("expected noSocketReset")
            return
        }
        #expect(r.hook == hook)
        #expect(r.hook.rawValue == source)
    }

    @Test func unknownResetSourceIsAnError() {
        #expect(throws: DecodeError.unknownHook(9)) { try EventDecoder.decode(rstRecord(source: 9)) }
    }

    @Test func listen() throws {
        let event = try EventDecoder.decode(listenRecord())
        guard case .listen(let c) = event else {
            Issue.record("expected listen, got \(event)")
            return
        }
        #expect(c.ts == 5_000)
        #expect(c.family == .ipv6)
        #expect(c.local.addr == IPAddress.any6)
        #expect(c.local.addr.description == "::")
        #expect(c.local.port == 443)
        #expect(c.task.pid == 4242)
        #expect(c.task.tid == 4243)
        #expect(c.task.uid == 1000)
        #expect(c.task.cgroupID == 77)
        #expect(c.task.comm == "nginx")
        #expect(c.socketInode == 987_654)
        #expect(c.netns == 4_026_532_000)
        #expect(c.ipv6Only == true)
    }

    @Test("a listener's bound device, a SYN's device and VRF: named as BPF saw them; ifindex 0 is none")
    func devices() throws {
        var bound = syn_dev()
        bound.ifindex = 7
        bound.found = 1
        fill(&bound.name, with: Array("eth1".utf8))
        guard case .listen(let c) = try EventDecoder.decode(listenRecord(bound: bound)) else {
            Issue.record("not a listen")
            return
        }
        #expect(c.boundDevice == NetDevice(ifindex: 7, name: "eth1"))
        guard case .listen(let plain) = try EventDecoder.decode(listenRecord()) else { return }
        #expect(plain.boundDevice == nil)

        var dev = syn_dev(), vrf = syn_dev(), gone = syn_dev()
        dev.ifindex = 12
        dev.found = 1
        fill(&dev.name, with: Array("veth\u{1b}x".utf8))
        vrf.ifindex = 9
        vrf.found = 1
        vrf.l3mdev = 1
        fill(&vrf.name, with: Array("blue".utf8))
        guard case .noSocketReset(let r) = try EventDecoder.decode(rstRecord(inDev: dev, inVRF: vrf)) else {
            Issue.record("not a reset")
            return
        }
        #expect(r.inDevice == NetDevice(ifindex: 12, name: "veth\\x1bx"))
        #expect(r.inVRF == NetDevice(ifindex: 9, name: "blue", isVRF: true))
        #expect(r.inVRF?.label == "VRF blue")
        // Found by index but not by name (deleted under the lookup): the index stands in.
        gone.ifindex = 5
        guard case .noSocketReset(let g) = try EventDecoder.decode(rstRecord(inDev: gone)) else { return }
        #expect(g.inDevice == NetDevice(ifindex: 5, name: nil))
        #expect(g.inDevice?.label == "ifindex 5")
        #expect(g.inVRF == nil)
    }

    @Test("iter/tcp's output: one seed per listener; a partial one at the end is ignored")
    func seeds() {
        var a = syn_seed_listener(), b = syn_seed_listener()
        a.sock_ino = 11
        a.netns = 4_026_531_840
        a.ipv6only = 1
        b.sock_ino = 12
        b.netns = 4_026_531_840
        b.bound.ifindex = 3
        b.bound.found = 1
        fill(&b.bound.name, with: Array("eth0".utf8))
        let bytes = rawBytes(of: a) + rawBytes(of: b) + [1, 2, 3]
        let seeds = ListenerSeed.decode(bytes)
        #expect(seeds == [ListenerSeed(netns: 4_026_531_840, socketInode: 11, ipv6Only: true),
                          ListenerSeed(netns: 4_026_531_840, socketInode: 12, ipv6Only: false,
                                       boundDevice: NetDevice(ifindex: 3, name: "eth0"))])
        var l = ListenerInfo(netns: 4_026_531_840, family: .ipv6, local: Endpoint(addr: .any6, port: 80), ipv6Only: nil,
                             socketInode: 11, pid: 1, comm: "x")
        l.apply(seeds[1])  // another socket's: ignored
        #expect(l.ipv6Only == nil)
        l.apply(seeds[0])
        #expect(l.ipv6Only == true && l.boundDevice == nil)
    }

    @Test func listenIPv4WithoutV6Only() throws {
        let event = try EventDecoder.decode(listenRecord(local: mapped(127, 0, 0, 1), lport: 5432, family: 2, ipv6only: 0))
        guard case .listen(let c) = event else {
            Issue.record("expected listen, got \(event)")
            return
        }
        #expect(c.family == .ipv4)
        #expect(c.local.description == "127.0.0.1:5432")
        #expect(c.local.addr.isLoopback)
        #expect(c.ipv6Only == false)
    }

    @Test func listenClose() throws {
        let event = try EventDecoder.decode(listenRecord(kind: SYN_EV_LISTEN_CLOSE, ts: 6_000))
        guard case .listenClose(let c) = event else {
            Issue.record("expected listenClose, got \(event)")
            return
        }
        #expect(c.ts == 6_000)
        #expect(c.task.pid == 4242)
        #expect(c.socketInode == 987_654)
        #expect(c.local.port == 443)
    }

    @Test func exitKilledBySignal() throws {
        let event = try EventDecoder.decode(exitRecord(exitCode: 9))
        guard case .exit(let x) = event else {
            Issue.record("expected exit, got \(event)")
            return
        }
        #expect(x.ts == 9_000_000_000)
        #expect(x.task.pid == 31337)
        #expect(x.task.comm == "redis-server")
        #expect(x.task.cgroupID == 5)
        #expect(x.exitCode == 9)
        #expect(x.signal == 9)
        #expect(x.status == nil)
        #expect(x.coreDumped == false)
    }

    @Test func exitWithStatus() throws {
        guard case .exit(let x) = try EventDecoder.decode(exitRecord(exitCode: 0x300)) else {
            Issue.record("expected exit")
            return
        }
        #expect(x.exitCode == 0x300)
        #expect(x.signal == nil)
        #expect(x.status == 3)
        #expect(x.coreDumped == false)
    }

    @Test func exitWithCoreDump() throws {
        guard case .exit(let x) = try EventDecoder.decode(exitRecord(exitCode: 0x86)) else {
            Issue.record("expected exit")
            return
        }
        #expect(x.signal == 6)
        #expect(x.coreDumped)
        #expect(x.status == nil)
    }

    @Test func connectError() throws {
        let event = try EventDecoder.decode(connectErrorRecord())
        guard case .connectError(let ce) = event else {
            Issue.record("expected connectError, got \(event)")
            return
        }
        #expect(ce.ts == 2_000_500)
        #expect(ce.connectTs == 2_000_000)
        #expect(ce.family == .ipv4)
        #expect(ce.local.description == "127.0.0.1:40000")
        #expect(ce.remote.description == "127.0.0.1:9")
        #expect(ce.task?.pid == 777)
        #expect(ce.task?.tid == 778)
        #expect(ce.task?.uid == 1001)
        #expect(ce.task?.comm == "curl")
        #expect(ce.netns == 4_026_531_840)
        #expect(ce.errno == 111)
        #expect(ce.elapsedMs == 0 && ce.clientLabel == "curl (pid 777)")
    }

    @Test("a connect() error whose connect() the kernel side did not see (no entry: all zero): no task, no connect() time")
    func connectErrorUnseen() throws {
        guard case .connectError(let ce) = try EventDecoder.decode(connectErrorRecord(err: 110, seen: false)) else {
            Issue.record("expected connectError")
            return
        }
        #expect(ce.task == nil && ce.connectTs == nil && ce.elapsedMs == nil)
        #expect(ce.clientLabel == ConnectError.unseenClient)
        #expect(ce.errno == 110 && ce.remote.description == "127.0.0.1:9")
    }

    @Test func connectErrorIPv6Timeout() throws {
        let bytes = connectErrorRecord(err: 110, family: 10, local: v6(0, 0, 0, 0, 0, 0, 0, 1), remote: v6(0, 0, 0, 0, 0, 0, 0, 1))
        guard case .connectError(let ce) = try EventDecoder.decode(bytes) else {
            Issue.record("expected connectError")
            return
        }
        #expect(ce.family == .ipv6)
        #expect(ce.local.description == "[::1]:40000")
        #expect(ce.errno == 110)
    }

    @Test func oversizedRecordDecodesLikeTheExactOne() throws {
        for exact in [rstRecord(), listenRecord(), listenRecord(kind: SYN_EV_LISTEN_CLOSE), exitRecord(exitCode: 9), connectErrorRecord()] {
            let padded = exact + [UInt8](repeating: 0xAB, count: 40)
            #expect(try EventDecoder.decode(padded) == EventDecoder.decode(exact))
        }
    }

    @Test func unalignedBufferDecodes() throws {
        // Ring-buffer records are 8-aligned, but the decoder must not depend on it.
        let exact = connectErrorRecord()
        let shifted = [UInt8(0xEE)] + exact
        let event = try shifted.withUnsafeBytes { raw in
            try EventDecoder.decode(UnsafeRawBufferPointer(rebasing: raw[1...]))
        }
        #expect(event == (try EventDecoder.decode(exact)))
    }

    @Test func commWithInvalidUTF8AndControlCharacters() throws {
        // 0xFF is never valid UTF-8; ESC [ 3 1 m is an ANSI color sequence.
        let comm: [UInt8] = [0x66, 0xFF, 0x6F, 0x1B, 0x5B, 0x33, 0x31, 0x6D, 0x0A, 0x07]
        guard case .listen(let c) = try EventDecoder.decode(listenRecord(comm: comm)) else {
            Issue.record("expected listen")
            return
        }
        // Kept recoverable in the escaped form of NameBytes, not as U+FFFD.
        #expect(c.task.comm == #"f\xffo\x1b[31m\x0a\x07"#)
        #expect(NameBytes.bytes(c.task.comm) == comm)
        #expect(TerminalText.escape(c.task.comm) == #"f\\xffo\\x1b[31m\\x0a\\x07"#)
    }

    @Test func commStopsAtFirstNUL() throws {
        let comm: [UInt8] = Array("ab".utf8) + [0] + Array("junk".utf8)
        guard case .exit(let x) = try EventDecoder.decode(exitRecord(exitCode: 0, comm: comm)) else {
            Issue.record("expected exit")
            return
        }
        #expect(x.task.comm == "ab")
        #expect(x.status == 0)
        #expect(x.signal == nil)
    }

    @Test func commFillingAllSixteenBytesIsNotOverread() throws {
        let comm = Array("0123456789abcdef".utf8)
        guard case .exit(let x) = try EventDecoder.decode(exitRecord(exitCode: 0, comm: comm)) else {
            Issue.record("expected exit")
            return
        }
        #expect(x.task.comm == "0123456789abcdef")
    }
}

// MARK: - Errors

@Suite("EventDecoder: errors")
struct DecodeErrorTests {
    @Test func emptyBuffer() {
        #expect(throws: DecodeError.empty) { try EventDecoder.decode([UInt8]()) }
        #expect(DecodeError.empty.description == "empty record")
    }

    @Test(arguments: [
        (UInt8(SYN_EV_NO_SOCKET_RST.rawValue), 136),
        (UInt8(SYN_EV_LISTEN.rawValue), 136),
        (UInt8(SYN_EV_LISTEN_CLOSE.rawValue), 136),
        (UInt8(SYN_EV_EXIT.rawValue), 64),
        (UInt8(SYN_EV_CONNECT_ERROR.rawValue), 120),
    ])
    func truncated(kind: UInt8, need: Int) throws {
        let full: [UInt8]
        switch UInt32(kind) {
        case SYN_EV_NO_SOCKET_RST.rawValue: full = rstRecord()
        case SYN_EV_LISTEN.rawValue: full = listenRecord()
        case SYN_EV_LISTEN_CLOSE.rawValue: full = listenRecord(kind: SYN_EV_LISTEN_CLOSE)
        case SYN_EV_EXIT.rawValue: full = exitRecord(exitCode: 9)
        default: full = connectErrorRecord()
        }
        #expect(full.count == need)
        #expect(full[0] == kind)
        #expect(throws: DecodeError.truncated(kind: kind, got: need - 1, need: need)) {
            try EventDecoder.decode(Array(full.prefix(need - 1)))
        }
        #expect(throws: DecodeError.truncated(kind: kind, got: 16, need: need)) {
            try EventDecoder.decode(Array(full.prefix(16)))
        }
        // A lone kind byte: truncated, not an ABI complaint about the missing byte.
        #expect(throws: DecodeError.truncated(kind: kind, got: 1, need: need)) {
            try EventDecoder.decode([kind])
        }
        #expect(DecodeError.truncated(kind: kind, got: 1, need: need).description
                == "record of kind \(kind) truncated: 1 bytes, need \(need)")
    }

    @Test(arguments: [UInt8(0), 19, 64, 0x80, 255])
    func unknownKind(kind: UInt8) {
        var bytes = rstRecord()
        bytes[0] = kind
        #expect(throws: DecodeError.unknownKind(kind)) { try EventDecoder.decode(bytes) }
        // Even a single byte names the kind.
        #expect(throws: DecodeError.unknownKind(kind)) { try EventDecoder.decode([kind]) }
    }

    @Test(arguments: [UInt8(0), 2, 255])
    func abiMismatch(abi: UInt8) {
        #expect(throws: DecodeError.abiMismatch(got: abi, expected: 1)) {
            try EventDecoder.decode(rstRecord(abi: abi))
        }
        var exit = exitRecord(exitCode: 0)
        exit[1] = abi
        #expect(throws: DecodeError.abiMismatch(got: abi, expected: 1)) { try EventDecoder.decode(exit) }
    }

    @Test(arguments: [UInt16(0), 1, 3, 11, 0xFFFF])
    func badFamily(family: UInt16) {
        #expect(throws: DecodeError.badFamily(family)) { try EventDecoder.decode(rstRecord(family: family)) }
        #expect(throws: DecodeError.badFamily(family)) { try EventDecoder.decode(listenRecord(family: family)) }
        #expect(throws: DecodeError.badFamily(family)) {
            try EventDecoder.decode(connectErrorRecord(family: family))
        }
    }

    @Test func errorDescriptionsNameTheProblem() {
        #expect(DecodeError.unknownKind(9).description == "unknown record kind 9")
        #expect(DecodeError.abiMismatch(got: 2, expected: 1).description == "record ABI version 2, this build understands 1")
        #expect(DecodeError.badFamily(3).description == "unknown address family 3")
    }
}
