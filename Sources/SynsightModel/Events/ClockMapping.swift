import SynsightBase

/// Converts kernel CLOCK_BOOTTIME nanoseconds to wall-clock nanoseconds.
public struct ClockMapping: Sendable {
    public var bootToEpochOffsetNs: Int64

    public init(bootToEpochOffsetNs: Int64) {
        self.bootToEpochOffsetNs = bootToEpochOffsetNs
    }

    public func epoch(_ boot: UInt64) -> Int64 { Int64(boot) + bootToEpochOffsetNs }
}
