package runner

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DLQ header names: where a rejected record came from and why.
const (
	HeaderTopic     = "caracal-source-topic"
	HeaderPartition = "caracal-source-partition"
	HeaderOffset    = "caracal-source-offset"
	HeaderError     = "caracal-error"
	HeaderConsumer  = "caracal-consumer"
	// HeaderReplayFor names the consumer a record replayed from the DLQ is
	// for (`caracal dlq replay` sets it to the consumer that rejected the
	// record): the other consumers of the topic already took the original
	// and skip the replay, so none counts an event twice.
	HeaderReplayFor = "caracal-dlq-for"
)

// replayForOther reports whether rec is a DLQ replay addressed to another
// consumer than name.
func replayForOther(rec *kgo.Record, name string) bool {
	for _, h := range rec.Headers {
		if h.Key == HeaderReplayFor {
			return string(h.Value) != name
		}
	}
	return false
}

// dlqRecord copies rec for the DLQ topic with the source and the error in
// its headers; the key and value are kept byte for byte.
func dlqRecord(o Options, rec *kgo.Record, err error) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(rec.Headers)+5)
	h = append(h, rec.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(rec.Partition), 10)},
		kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, rec.Offset, 10)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(err.Error())},
		kgo.RecordHeader{Key: HeaderConsumer, Value: []byte(o.Name)},
	)
	return &kgo.Record{Topic: o.DLQTopic, Key: rec.Key, Value: rec.Value, Headers: h}
}
