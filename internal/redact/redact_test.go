package redact_test

import (
	"testing"

	"github.com/backfillhq/backfill/internal/redact"
)

func TestURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"Plain", "https://api2.amplitude.com", "https://api2.amplitude.com"},
		{"Password", "http://user:PW@host:8080/base", "http://user:[REDACTED]@host:8080/base"},
		{"LoneUserinfo", "https://TOKEN@host/x", "https://[REDACTED]@host/x"},
		{"EndpointParamUnencoded", "s3://b/p/?endpoint=http://user:PW@127.0.0.1:9000&use_path_style=true", "s3://b/p/?endpoint=http://user:[REDACTED]@127.0.0.1:9000&use_path_style=true"},
		{"EndpointParamEncoded", "s3://b/p?endpoint=http%3A%2F%2Fuser%3APW%40h%3A9000", "s3://b/p?endpoint=http%3A%2F%2Fuser%3A%5BREDACTED%5D%40h%3A9000"},
		{"SAS", "azblob://c/p?sv=2020-08-04&sig=abc%2Bdef&se=2030", "azblob://c/p?sv=2020-08-04&sig=[REDACTED]&se=2030"},
		{"AmzParams", "https://h/o?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ff&X-Amz-Security-Token=t&region=us", "https://h/o?X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]&X-Amz-Security-Token=[REDACTED]&region=us"},
		{"KeepsOthers", "s3://b/k?region=eu-west-1&use_path_style=true&profile=dev", "s3://b/k?region=eu-west-1&use_path_style=true&profile=dev"},
		{"GlobNotQuery", "s3://b/part-?.csv", "s3://b/part-?.csv"},
		{"NotURL", "./events/", "./events/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.URL(tt.in); got != tt.want {
				t.Fatalf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	tests := []struct{ name, in, key, want string }{
		// A one-letter key must not garble the message.
		{"ShortKeyNotSubstring", "invalid key k: check the key", "k", "invalid key [REDACTED]: check the key"},
		{"ShortKeyInWords", "the bucket keeps keys", "k", "the bucket keeps keys"},
		{"WholeKey", `400 Invalid API key: 0123456789abcdef`, "0123456789abcdef", `400 Invalid API key: [REDACTED]`},
		{"KeyInJSON", `{"api_key":"sekrit","events":[]}`, "sekrit", `{"api_key":"[REDACTED]","events":[]}`},
		{"KeyPrefixOfLongerToken", "sekrit2 is not the key", "sekrit", "sekrit2 is not the key"},
		{"KeyJSONEscaped", `{"api_key":"a\"b"}`, `a"b`, `{"api_key":"[REDACTED]"}`},
		{"URLInError", `open bucket "s3://b/p?endpoint=http://u:PW@h:9000&region=x": dial tcp: refused`, "", `open bucket "s3://b/p?endpoint=http://u:[REDACTED]@h:9000&region=x": dial tcp: refused`},
		{"TwoURLs", "from http://a:1@h to https://b:2@g/x", "", "from http://a:[REDACTED]@h to https://b:[REDACTED]@g/x"},
		{"NoSchemeColonSlash", "weird ://thing", "", "weird ://thing"},
		{"Empty", "", "k", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.Text(tt.in, tt.key); got != tt.want {
				t.Fatalf("Text(%q, %q) = %q, want %q", tt.in, tt.key, got, tt.want)
			}
		})
	}
}

func FuzzText(f *testing.F) {
	f.Add("http://u:p@h/x?token=1 and k", "k")
	f.Fuzz(func(t *testing.T, s, key string) {
		_ = redact.Text(s, key)
	})
}
