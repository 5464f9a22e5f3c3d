package main

import (
	"strings"
	"testing"

	"github.com/caracal-gw/caracal/internal/config"
)

func TestKafkaAdminOpts(t *testing.T) {
	for _, tc := range []struct {
		k    config.Kafka
		opts int
		err  string
	}{
		{config.Kafka{Brokers: []string{"b:9092"}}, 1, ""},
		{config.Kafka{Brokers: []string{"b:9092"}, ClientID: "c", TLS: true}, 3, ""},
		{config.Kafka{Brokers: []string{"b:9092"}, SASL: config.SASL{Mechanism: "PLAIN", Username: "u", Password: "p"}}, 2, ""},
		{config.Kafka{Brokers: []string{"b:9092"}, SASL: config.SASL{Mechanism: "SCRAM-SHA-256"}}, 2, ""},
		{config.Kafka{Brokers: []string{"b:9092"}, SASL: config.SASL{Mechanism: "SCRAM-SHA-512"}}, 2, ""},
		{config.Kafka{Brokers: []string{"b:9092"}, SASL: config.SASL{Mechanism: "GSSAPI"}}, 0, "kafka.sasl.mechanism"},
		{config.Kafka{}, 0, "kafka.brokers"},
	} {
		opts, err := kafkaAdminOpts(tc.k)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: error %v, want %q", tc.k, err, tc.err)
			}
			continue
		}
		if err != nil || len(opts) != tc.opts {
			t.Errorf("%+v: %d options, %v; want %d", tc.k, len(opts), err, tc.opts)
		}
	}
}
