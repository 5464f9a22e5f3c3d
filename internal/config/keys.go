package config

import (
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
)

var errEOF = io.EOF

// Duration is a time.Duration that reads a bare number as seconds, as the
// guide writes requestTimeout: 30, and also Go duration strings ("250ms").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return Duration(n * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want seconds or e.g. 250ms)", s)
	}
	return Duration(v), nil
}

var durationType = reflect.TypeOf(Duration(0))

// Keys lists every configuration key as a dotted path, in declaration order.
func Keys() []string {
	var out []string
	walk(reflect.TypeOf(Config{}), "", func(path string, _ []int) { out = append(out, path) })
	return out
}

// EnvName is the environment variable that overrides key:
// kafka.producer.linger.ms -> CARACAL_KAFKA_PRODUCER_LINGER_MS.
func EnvName(key string) string {
	var b strings.Builder
	b.WriteString("CARACAL_")
	for i, part := range strings.FieldsFunc(key, func(r rune) bool { return r == '.' }) {
		if i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(snake(part))
	}
	return b.String()
}

func snake(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if i > 0 && unicode.IsUpper(c) {
			prev := r[i-1]
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToUpper(c))
	}
	return b.String()
}

func walk(t reflect.Type, prefix string, fn func(path string, index []int)) {
	var rec func(t reflect.Type, prefix string, index []int)
	rec = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "" || tag == "-" {
				continue
			}
			path := tag
			if prefix != "" {
				path = prefix + "." + tag
			}
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				rec(f.Type, path, idx)
				continue
			}
			fn(path, idx)
		}
	}
	rec(t, prefix, nil)
}

// Set assigns the string value to the dotted key, as --set and the
// environment do.
func Set(c *Config, key, value string) error {
	var found []int
	walk(reflect.TypeOf(*c), "", func(path string, index []int) {
		if path == key {
			found = index
		}
	})
	if found == nil {
		return fmt.Errorf("unknown key %q", key)
	}
	f := reflect.ValueOf(c).Elem().FieldByIndex(found)
	if err := setValue(f, value); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func setValue(f reflect.Value, s string) error {
	if f.Type() == durationType {
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", s)
		}
		f.SetBool(v)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v, err := strconv.ParseInt(s, 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		f.SetInt(v)
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	default:
		panic(fmt.Sprintf("BUG: config field of kind %s has no parser", f.Kind()))
	}
	return nil
}

// applyEnv applies every CARACAL_* variable that names a key. Variables of
// other tools that share the prefix (tests, scripts) are left alone.
func applyEnv(c *Config, environ []string) error {
	byEnv := map[string]string{}
	for _, k := range Keys() {
		byEnv[EnvName(k)] = k
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "CARACAL_") {
			continue
		}
		if name == "CARACAL_DATABASE_PASSWORD" {
			// Applied last (see Load), whatever the order of the variables.
			c.dbPassword = value
			continue
		}
		key, ok := byEnv[name]
		if !ok {
			continue
		}
		if err := Set(c, key, value); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func withPassword(dsn, pw string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("a password can only be added to a postgres:// URL")
	}
	name := "caracal"
	if u.User != nil {
		name = u.User.Username()
	}
	u.User = url.UserPassword(name, pw)
	return u.String(), nil
}

// Redacted returns a copy with every secret replaced, for dumps and logs.
func (c Config) Redacted() Config {
	v := reflect.ValueOf(&c).Elem()
	walk(v.Type(), "", func(_ string, index []int) {
		sf := v.Type().FieldByIndex(index)
		f := v.FieldByIndex(index)
		if sf.Tag.Get("secret") != "true" || f.Kind() != reflect.String || f.String() == "" {
			return
		}
		if u, err := url.Parse(f.String()); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "REDACTED")
				f.SetString(u.String())
				return
			}
			if u.Scheme != "" {
				return
			}
		}
		f.SetString("REDACTED")
	})
	return c
}
