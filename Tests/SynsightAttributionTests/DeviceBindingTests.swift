@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

// no_listener when a listener on the SYN's address did not take it because
// of devices: SO_BINDTODEVICE (bound_to_other_device) or VRFs (other_vrf).
// The kernel's rule is inet_bound_dev_eq (include/net/inet_sock.h).
@Suite("AttributionEngine: device-bound listeners")
struct DeviceBindingTests {
    static let eth1 = NetDevice(ifindex: 7, name: "eth1")
    static let lo = NetDevice(ifindex: 1, name: "lo")
    static let blue = NetDevice(ifindex: 9, name: "blue", isVRF: true)
    static let veth = NetDevice(ifindex: 12, name: "veth-b")

    static func listen(_ addr: Endpoint, bound: NetDevice?, inode: UInt64 = 21) -> KernelEvent {
        var c = listenerChange(at: 100, on: addr, pid: 4410, comm: "nginx", inode: inode)
        c.boundDevice = bound
        return .listen(c)
    }

    static func syn(to local: Endpoint, on dev: NetDevice?, vrf: NetDevice? = nil) -> KernelEvent {
        guard case .noSocketReset(var r) = rst(at: 200, to: local, from: client1) else { fatalError() }
        r.inDevice = dev
        r.inVRF = vrf
        return .noSocketReset(r)
    }

    static let loopback = v4(127, 0, 0, 1)
    static let ownAddress = v4(10, 0, 0, 1)

    /// The records of one 0.0.0.0:8080 listener bound to `bound` and one SYN
    /// to `to`:8080 that came in on `on` through `vrf`.
    static func refused(bound: NetDevice?, to addr: IPAddress, on dev: NetDevice?, vrf: NetDevice? = nil) -> [Record] {
        var e = engine()
        return run(&e, [listen(Endpoint(addr: .any4, port: 8080), bound: bound),
                        syn(to: Endpoint(addr: addr, port: 8080), on: dev, vrf: vrf)])
    }

    /// One record of each cause (SchemaRecordsTests validates them).
    static func records() -> [Record] {
        refused(bound: eth1, to: loopback, on: lo) + refused(bound: nil, to: ownAddress, on: veth, vrf: blue)
    }

    @Test("a listener bound to eth1, a SYN in on lo: bound_to_other_device, both devices named")
    func boundToOtherDevice() throws {
        let r = try single(Self.refused(bound: Self.eth1, to: Self.loopback, on: Self.lo))
        #expect(r.cause?.rawValue == "bound_to_other_device")
        #expect(r.process?.pid == 4410)
        #expect(r.evidence("syn_device")?["name"]?.stringValue == "lo")
        #expect(r.evidence("syn_vrf") == nil)
        guard case .array(let ls)? = r.evidence("listeners") else {
            Issue.record("no listeners evidence: \(r)")
            return
        }
        #expect(ls.first?["bound_device"]?["name"]?.stringValue == "eth1")
        #expect(ls.first?["bound_device"]?["ifindex"]?.intValue == 7)
        let hint = try #require(r.hint)
        #expect(hint.contains("bound to device eth1 (SO_BINDTODEVICE)") && hint.contains("came in on lo"), "\(hint)")
        #expect(hint.contains("SO_BINDTODEVICE eth1"), "the fix names the binding: \(hint)")
        #expect(!hint.contains("bind it to lo"), "binding to the loopback is no fix: \(hint)")
    }

    @Test("the SYN came in on the bound device: the listener would have taken it (a race), not this cause")
    func sameDeviceIsNotTheCause() throws {
        let r = try single(Self.refused(bound: Self.eth1, to: Self.ownAddress, on: Self.eth1))
        #expect(r.cause?.rawValue == "never_listened")
    }

    @Test("an unbound listener in the default VRF, a SYN through VRF blue: other_vrf with tcp_l3mdev_accept")
    func defaultVRFListener() throws {
        let r = try single(Self.refused(bound: nil, to: Self.ownAddress, on: Self.veth, vrf: Self.blue))
        #expect(r.cause?.rawValue == "other_vrf")
        #expect(r.evidence("syn_vrf")?["name"]?.stringValue == "blue")
        #expect(r.evidence("syn_vrf")?["vrf"] == .bool(true))
        #expect(r.evidence("syn_device")?["name"]?.stringValue == "veth-b")
        let hint = try #require(r.hint)
        #expect(hint.contains("in the default VRF") && hint.contains("through VRF blue"), "\(hint)")
        #expect(hint.contains("ip vrf exec blue") && hint.contains("net.ipv4.tcp_l3mdev_accept=1"), "\(hint)")
    }

    @Test("a listener in VRF blue (ip vrf exec), a SYN in the default VRF: other_vrf; through blue it would have matched")
    func listenerInVRF() throws {
        let r = try single(Self.refused(bound: Self.blue, to: Self.loopback, on: Self.lo))
        #expect(r.cause?.rawValue == "other_vrf")
        let hint = try #require(r.hint)
        #expect(hint.contains("in VRF blue (bound to it)") && hint.contains("ip vrf exec blue <client>"), "\(hint)")

        let raced = try single(Self.refused(bound: Self.blue, to: Self.ownAddress, on: Self.veth, vrf: Self.blue))
        #expect(raced.cause?.rawValue == "never_listened")
    }

    @Test("a device mismatch on the address wins over a listener on another address")
    func deviceOverAddress() throws {
        var e = engine()
        let r = try single(run(&e, [
            Self.listen(Endpoint(addr: v4(127, 0, 0, 1), port: 8080), bound: nil, inode: 30),
            Self.listen(Endpoint(addr: .any4, port: 8080), bound: Self.eth1, inode: 31),
            Self.syn(to: Endpoint(addr: v4(10, 0, 0, 1), port: 8080), on: Self.veth),
        ]))
        #expect(r.cause?.rawValue == "bound_to_other_device")
        #expect(r.hint?.contains("or bind it to veth-b, where the SYN came in") == true, "\(r.hint ?? "")")
    }

    @Test("the SYN's device unknown (older record): a bound listener still explains it")
    func unknownArrivalDevice() throws {
        let r = try single(Self.refused(bound: Self.eth1, to: Self.loopback, on: nil))
        #expect(r.cause?.rawValue == "bound_to_other_device")
        #expect(r.hint?.contains("came in on another device") == true, "\(r.hint ?? "")")
    }
}
