import CSynsightABI
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// The overflow method the kernel side reports decodes to a name that starts
/// with the hook itself: the kernel matrix (scripts/kernel-matrix/) compares
/// that prefix with the hook each kernel must use, so fentry and kprobe, fexit
/// and kretprobe must never share a name.
@Suite("overflow methods: one hook, one name")
struct OverflowMethodTests {
    @Test(arguments: [
        (SYN_OVF_M_CONSUME_SKB, "tp_btf/consume_skb"),
        (SYN_OVF_M_KFREE_SKB, "tp_btf/kfree_skb TCP_LISTEN_OVERFLOW"),
        (SYN_OVF_M_SEND_RESET, "tp_btf/tcp_send_reset"),
        (SYN_OVF_M_CONN_REQUEST, "fentry/tcp_conn_request"),
        (SYN_OVF_M_CONN_REQUEST_KPROBE, "kprobe/tcp_conn_request"),
        (SYN_OVF_M_SYN_RECV_FEXIT, "fexit/tcp_v{4,6}_syn_recv_sock"),
        (SYN_OVF_M_SYN_RECV_KRETPROBE, "kretprobe/tcp_v{4,6}_syn_recv_sock"),
        (SYN_OVF_M_CONN_REQUEST_FEXIT, "fexit/tcp_conn_request"),
        (SYN_OVF_M_CONN_REQUEST_KRETPROBE, "kretprobe/tcp_conn_request"),
    ])
    func decodedName(method: syn_overflow_method, prefix: String) throws {
        let bytes = overflowRecordBytes(stage: UInt8(SYN_OVF_ACK_DROP.rawValue), method: UInt8(method.rawValue))
        guard case .listenOverflow(let o) = try EventDecoder.decode(bytes) else {
            Issue.record("expected listenOverflow")
            return
        }
        #expect(o.method.name.hasPrefix(prefix), "\(o.method.name)")
        #expect(o.stage == .ackDrop)
    }

    @Test func namesAreDistinct() {
        let names = OverflowMethod.allCases.map(\.name)
        #expect(Set(names).count == names.count)
        let hooks = names.map { $0.split(separator: ":")[0].split(separator: " ")[0] }
        #expect(Set(hooks).count == hooks.count, "\(hooks)")
    }
}
