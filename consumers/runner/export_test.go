package runner

// SetTestBetweenPolls sets the hook fill calls between the polls of a batch
// (nil removes it). Tests only; not safe while a runner is running.
func SetTestBetweenPolls(f func()) { testBetweenPolls = f }
