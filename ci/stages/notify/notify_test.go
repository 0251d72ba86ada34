package notify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/testsupport/smtpserver"
)

const password = "smtp-planted-pass-77"

func sampleReport(result error) *report.Run {
	r := report.New("Wanderlust deploy", "dev")
	r.Begin("bump")(map[string]string{"sha": "0123456789ab"}, nil)
	r.Begin("sync")(map[string]string{"health": "Healthy"}, result)
	r.Finish(result)
	return r
}

// decode parses a mail and returns its subject and its decoded text and HTML parts.
func decode(t *testing.T, data []byte) (subject, text, html string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(p) // multipart decodes quoted-printable itself
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			html = string(b)
		} else {
			text = string(b)
		}
	}
	return subject, text, html
}

func opts(s *smtpserver.Server, mode string) Options {
	host, port, _ := net.SplitHostPort(s.Addr)
	o := Options{Host: host, Username: "ci", Password: password, From: "ci@wanderlust.test", To: []string{"team@wanderlust.test", "ops@wanderlust.test"}, TLS: mode, RootCAs: s.RootCAs, Timeout: 5 * time.Second}
	for _, c := range port {
		o.Port = o.Port*10 + int(c-'0')
	}
	return o
}

func TestSendOverStartTLSAndImplicitTLS(t *testing.T) {
	for _, mode := range []string{StartTLS, Implicit} {
		t.Run(mode, func(t *testing.T) {
			s, err := smtpserver.Start("ci", password, mode == Implicit)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := Send(context.Background(), opts(s, mode), sampleReport(nil)); err != nil {
				t.Fatal(err)
			}
			msgs := s.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			m := msgs[0]
			data := string(m.Data)
			if m.Auth != "ci" || m.From != "ci@wanderlust.test" || strings.Join(m.To, ",") != "team@wanderlust.test,ops@wanderlust.test" {
				t.Errorf("envelope %+v", m)
			}
			subject, text, html := decode(t, m.Data)
			if subject != "Wanderlust Application has been updated and deployed to dev - 'SUCCESS'" {
				t.Errorf("subject %q", subject)
			}
			for _, want := range []string{"sha=0123456789ab", "deployment duration", "SUCCEEDED"} {
				if !strings.Contains(text, want) || !strings.Contains(html, want) {
					t.Errorf("text or HTML part lacks %q:\n%s\n%s", want, text, html)
				}
			}
			if strings.Contains(data, password) {
				t.Error("the password is in the message")
			}
		})
	}
}

func TestFailureSubject(t *testing.T) {
	s, err := smtpserver.Start("ci", password, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := Send(context.Background(), opts(s, StartTLS), sampleReport(errors.New("health Degraded"))); err != nil {
		t.Fatal(err)
	}
	subject, text, _ := decode(t, s.Messages()[0].Data)
	if !strings.HasSuffix(subject, "'FAILURE'") || !strings.Contains(text, "health Degraded") {
		t.Errorf("failure mail: %q\n%s", subject, text)
	}
}

func TestAuthRefusedAndServerDown(t *testing.T) {
	s, err := smtpserver.Start("ci", password, false)
	if err != nil {
		t.Fatal(err)
	}
	o := opts(s, StartTLS)
	o.Password = "wrong-pass-1234"
	err = Send(context.Background(), o, sampleReport(nil))
	if err == nil || strings.Contains(err.Error(), "wrong-pass-1234") || len(s.Messages()) != 0 {
		t.Errorf("auth refused: err %v, %d messages", err, len(s.Messages()))
	}
	s.Close()
	o.Password = password
	if err := Send(context.Background(), o, sampleReport(nil)); err == nil || !strings.Contains(err.Error(), "send to") {
		t.Errorf("server down: %v", err)
	}
	// An untrusted certificate is refused: TLS is verified.
	s2, _ := smtpserver.Start("ci", password, false)
	defer s2.Close()
	o2 := opts(s2, StartTLS)
	o2.RootCAs = nil
	if err := Send(context.Background(), o2, sampleReport(nil)); err == nil || len(s2.Messages()) != 0 {
		t.Errorf("untrusted certificate accepted: %v", err)
	}
	if err := Send(context.Background(), Options{}, sampleReport(nil)); err == nil {
		t.Error("empty options accepted")
	}
}
