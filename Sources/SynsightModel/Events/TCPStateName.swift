/// TCP states as numbered in /proc/net/tcp (include/net/tcp_states.h).
public enum TCPStateName {
    public static func name(_ state: UInt8, proto: String = "tcp") -> String {
        if proto == "udp" { return state == 1 ? "CONNECTED" : "UNCONN" }
        switch state {
        case 1: return "ESTABLISHED"
        case 2: return "SYN_SENT"
        case 3: return "SYN_RECV"
        case 4: return "FIN_WAIT1"
        case 5: return "FIN_WAIT2"
        case 6: return "TIME_WAIT"
        case 7: return "CLOSE"
        case 8: return "CLOSE_WAIT"
        case 9: return "LAST_ACK"
        case 10: return "LISTEN"
        case 11: return "CLOSING"
        case 12: return "NEW_SYN_RECV"
        default: return "state \(state)"
        }
    }
}
