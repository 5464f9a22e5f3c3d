package main

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/kafkaopt"
)

// kafkaAdminOpts returns the options of an administration client (brokers,
// client id, TLS and SASL, mapped once by kafkaopt), refusing what the
// admin commands cannot use.
func kafkaAdminOpts(k config.Kafka) ([]kgo.Opt, error) {
	if len(k.Brokers) == 0 {
		return nil, fmt.Errorf("config key kafka.brokers: at least one broker is required")
	}
	switch k.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return nil, fmt.Errorf("config key kafka.sasl.mechanism: unsupported %q", k.SASL.Mechanism)
	}
	return kafkaopt.Client(&config.Config{Kafka: k}), nil
}
