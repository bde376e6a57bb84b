import SynsightBase
/// The evidence of `fd_exhausted`: accept() failing with EMFILE or ENFILE.
public struct FdExhaustedEvidence: ReasonEvidence {
    public static let reasons: Set<Reason> = [.fdExhausted]

    /// EMFILE or ENFILE.
    public var errno: String?
    /// The process's RLIMIT_NOFILE.
    public var nofileLimit: UInt64?
    /// The kernel hook that saw the failure.
    public var hook: String?

    public init() {}

    public static let layout: [EvidenceField<FdExhaustedEvidence>] = [
        .string(.errno, \.errno), .int(.nofileLimit, \.nofileLimit), .string(.hook, \.hook),
    ]
}

extension Record {
    /// The typed evidence of an `fd_exhausted` record; nil for any other reason.
    public var fdExhaustedEvidence: FdExhaustedEvidence? { evidence(as: FdExhaustedEvidence.self) }
}
