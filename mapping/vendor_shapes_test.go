package mapping_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/mapping"
)

// vendorCase is one record shaped as its vendor's documentation shows it
// (cite is the page), and what the preset must make of it: want maps a
// dotted path of the event (e.g. "event_properties.$insert_id") to its
// JSON value, "-" meaning absent.
type vendorCase struct {
	name, preset, cite string
	in                 string
	want               map[string]string
	profile            bool
	skipped            bool // excluded at the source
	errCode            string
}

var vendorCases = []vendorCase{
	// Mixpanel.
	{
		name: "MixpanelRawExport", preset: "mixpanel", cite: "https://docs.mixpanel.com/docs/export-methods",
		in: `{"event":"Signed up","properties":{"time":1602611311,"$insert_id":"ABCDE","mp_processing_time_ms":1602625711874,"distinct_id":"user123","$device_id":"17b1c8e3a0c4d1-0a1b","mp_lib":"web","$os":"Windows","$email":"a@example.com"}}`,
		want: map[string]string{"event_type": `"Signed up"`, "time": "1602611311000", "user_id": `"user123"`, "device_id": `"17b1c8e3a0c4d1-0a1b"`,
			"platform": `"Web"`, "os_name": `"Windows"`, "event_properties.$insert_id": `"ABCDE"`, "event_properties.mp_processing_time_ms": "-"},
	},
	{
		name: "MixpanelPipelinesISOTime", preset: "mixpanel", cite: "https://docs.mixpanel.com/docs/data-pipelines/json-pipelines",
		in: `{"event_name":"Order Placed","time":"2024-03-01T10:00:00.000Z","distinct_id":"user-9001","device_id":"dev-9001-abc","user_id":"user-9001","insert_id":"shared-9001","properties":{"$os":"Android","mp_lib":"android","amount":20}}`,
		want: map[string]string{"event_type": `"Order Placed"`, "time": "1709287200000", "user_id": `"user-9001"`, "device_id": `"dev-9001-abc"`,
			"platform": `"Android"`, "os_name": `"Android"`, "event_properties.$insert_id": `"shared-9001"`, "event_properties.amount": "20"},
	},
	{
		name: "MixpanelPipelinesSecondsAnonymous", preset: "mixpanel", cite: "https://docs.mixpanel.com/docs/data-pipelines/json-pipelines",
		in:   `{"event_name":"Page Viewed","time":1709287200,"distinct_id":"$device:dev-anon-77","device_id":"dev-anon-77","insert_id":"ins-77","properties":{"mp_lib":"iphone","$os":"iOS"}}`,
		want: map[string]string{"time": "1709287200000", "user_id": "-", "device_id": `"dev-anon-77"`, "platform": `"iOS"`},
	},
	{
		name: "MixpanelIdentifyLinksBothIds", preset: "mixpanel", cite: "https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-original",
		in:   `{"event":"$identify","properties":{"time":1709287300,"distinct_id":"user-9003","$anon_distinct_id":"$device:dev-anon-9003","$identified_id":"user-9003","$insert_id":"idf-1"}}`,
		want: map[string]string{"event_type": `"$identify"`, "user_id": `"user-9003"`, "device_id": `"dev-anon-9003"`, "event_properties.$anon_distinct_id": "-"},
	},
	{
		name: "MixpanelIdentifyAPIAnonID", preset: "mixpanel", cite: "https://docs.mixpanel.com/reference/create-identity",
		in:   `{"event":"$identify","properties":{"time":1709287301,"$identified_id":"user-9004","$anon_id":"3c2a6f4e-anon-9004","token":"t"}}`,
		want: map[string]string{"user_id": `"user-9004"`, "device_id": `"3c2a6f4e-anon-9004"`, "event_properties": "-"},
	},
	{
		name: "MixpanelEngageNumericDistinctID", preset: "mixpanel", cite: "https://docs.mixpanel.com/reference/engage-query",
		in:      `{"$distinct_id":400000,"$properties":{"$created":"2008-12-12T11:20:47","$email":"example@mixpanel.com","$last_seen":"2008-06-09T23:08:40"}}`,
		profile: true,
		want:    map[string]string{"user_id": `"400000"`, "time": "1229080847000"},
	},
	{
		name: "MixpanelEngageProfile", preset: "mixpanel", cite: "https://docs.mixpanel.com/reference/engage-query",
		in:      `{"$distinct_id":"user-9001","$properties":{"$email":"ada@example.com","$name":"Ada","$created":"2023-12-01T08:00:00","$last_seen":"2024-03-01T10:00:00","plan":"pro"}}`,
		profile: true,
		want: map[string]string{"event_type": `"$identify"`, "user_id": `"user-9001"`, "time": "1701417600000",
			"user_properties.$set.plan": `"pro"`, "user_properties.$set.$email": `"ada@example.com"`, "event_properties": "-", "$skip_user_properties_sync": "-"},
	},
	{
		name: "MixpanelPipelinesPeople", preset: "mixpanel", cite: "https://docs.mixpanel.com/docs/data-pipelines/json-pipelines",
		in:      `{"distinct_id":"user-9002","properties":{"$email":"bo@example.com","$last_seen":"2024-03-02T00:00:00"}}`,
		profile: true,
		want:    map[string]string{"event_type": `"$identify"`, "user_id": `"user-9002"`, "time": "1709337600000", "user_properties.$set.$email": `"bo@example.com"`, "event_properties": "-"},
	},
	{
		name: "MixpanelPipelinesIdentityMapping", preset: "mixpanel", cite: "https://docs.mixpanel.com/docs/data-pipelines/json-pipelines",
		in:      `{"distinct_id":"$device:abc-123","resolved_distinct_id":"user-9003"}`,
		errCode: "missing_event_type",
	},
	// PostHog.
	{
		name: "PostHogS3BatchExportEvents", preset: "posthog", cite: "https://posthog.com/docs/cdp/batch-exports/s3",
		in: `{"uuid":"0190a1b2-0000-7000-8000-000000000001","event":"$pageview","distinct_id":"0190a1b2-anon-0001","person_id":"0190a1b2-person-1","properties":{"$device_id":"0190a1b2-anon-0001","$lib":"web","$os":"Mac OS X","$current_url":"https://example.com/"},"person_properties":{"email":"x@example.com"},"elements_chain":"","timestamp":"2024-06-01T09:00:00.123456Z","created_at":"2024-06-01T09:00:01.000000Z","_inserted_at":"2024-06-01T09:00:02.000000Z"}`,
		want: map[string]string{"insert_id": `"0190a1b2-0000-7000-8000-000000000001"`, "time": "1717232400123", "device_id": `"0190a1b2-anon-0001"`, "user_id": "-",
			"platform": `"Web"`, "os_name": `"Mac OS X"`, "event_properties.$current_url": `"https://example.com/"`, "user_properties": "-"},
	},
	{
		name: "PostHogEventsAPI", preset: "posthog", cite: "https://www.mintlify.com/PostHog/posthog/api/events/list",
		in:   `{"id":"0190a1b2-0000-7000-8000-0000000000aa","distinct_id":"user-7001","properties":{"$lib":"posthog-python","plan":"team"},"event":"plan changed","timestamp":"2024-06-01T10:00:00Z","person":null,"elements":[],"elements_chain":""}`,
		want: map[string]string{"insert_id": `"0190a1b2-0000-7000-8000-0000000000aa"`, "user_id": `"user-7001"`, "platform": "-", "event_properties.plan": `"team"`},
	},
	{
		name: "PostHogMobileAnonymous", preset: "posthog", cite: "https://posthog.com/docs/references/posthog-react-native-4.7.0/types/PostHogCustomAppProperties",
		in:   `{"uuid":"0190a1b2-0000-7000-8000-000000000002","event":"Application Opened","distinct_id":"0190a1b2-ios-anon-1","timestamp":"2024-06-01T09:05:00Z","properties":{"$lib":"posthog-ios","$os_name":"iOS","$os_version":"17.2","$is_identified":false,"$device_model":"iPhone15,2"}}`,
		want: map[string]string{"device_id": `"0190a1b2-ios-anon-1"`, "user_id": "-", "os_name": `"iOS"`, "platform": `"iOS"`, "device_model": `"iPhone15,2"`, "event_properties.$is_identified": "-"},
	},
	{
		name: "PostHogMobileIdentify", preset: "posthog", cite: "https://posthog.com/docs/product-analytics/identify",
		in:   `{"uuid":"0190a1b2-0000-7000-8000-000000000003","event":"$identify","distinct_id":"user-7001","timestamp":"2024-06-01T09:06:00Z","properties":{"$lib":"posthog-android","$os_name":"Android","$anon_distinct_id":"0190a1b2-ios-anon-1","$is_identified":true,"$set":{"email":"u7001@example.com"}}}`,
		want: map[string]string{"event_type": `"$identify"`, "user_id": `"user-7001"`, "device_id": `"0190a1b2-ios-anon-1"`, "platform": `"Android"`, "user_properties.$set.email": `"u7001@example.com"`},
	},
	{
		name: "PostHogReactNative", preset: "posthog", cite: "https://posthog.com/docs/references/posthog-react-native-4.7.0/types/PostHogCustomAppProperties",
		in:   `{"uuid":"0190a1b2-0000-7000-8000-000000000004","event":"screen viewed","distinct_id":"user-7001","timestamp":"2024-06-01T09:07:00Z","properties":{"$lib":"posthog-react-native","$os_name":"Android","$app_version":"2.0.1"}}`,
		want: map[string]string{"platform": `"Android"`, "os_name": `"Android"`, "app_version": `"2.0.1"`},
	},
	{
		name: "PostHogRevenue", preset: "posthog", cite: "https://posthog.com/docs/revenue-analytics/capture-revenue-events",
		in: `{"uuid":"0190a1b2-0000-7000-8000-000000000005","event":"purchase","distinct_id":"user-7001","timestamp":"2024-06-01T09:08:00Z","properties":{"revenue":49.99,"currency":"USD","product_id":"sku-1","price":24.995,"quantity":2}}`,
		want: map[string]string{"revenue": "49.99", "currency": `"USD"`, "productId": `"sku-1"`, "price": "-", "quantity": "-",
			"event_properties.revenue": "49.99", "event_properties.price": "24.995", "event_properties.currency": `"USD"`},
	},
	{
		name: "PostHogGroups", preset: "posthog", cite: "https://posthog.com/docs/data/events.md",
		in:   `{"uuid":"0190a1b2-0000-7000-8000-000000000006","event":"report exported","distinct_id":"user-7001","timestamp":"2024-06-01T09:09:00Z","properties":{"$groups":{"company":"acme"}}}`,
		want: map[string]string{"groups.company": `"acme"`, "event_properties.$groups": "-"},
	},
	{
		name: "PostHogPersonsBatchExport", preset: "posthog", cite: "https://posthog.com/docs/cdp/batch-exports/s3",
		in:      `{"team_id":1,"distinct_id":"user-7001","person_id":"0190a1b2-person-1","properties":{"email":"u7001@example.com","plan":"team"},"person_version":3,"person_distinct_id_version":1,"created_at":"2024-01-01T00:00:00Z","_inserted_at":"2024-06-02T00:00:00Z"}`,
		profile: true,
		want: map[string]string{"event_type": `"$identify"`, "user_id": `"user-7001"`, "time": "1704067200000", "user_properties.$set.plan": `"team"`,
			"event_properties": "-", "$skip_user_properties_sync": "-"},
	},
	{
		name: "PostHogPersonsAPI", preset: "posthog", cite: "https://posthog.com/docs/api/persons-5",
		in:      `{"id":7002,"uuid":"0190a1b2-person-2","distinct_ids":["user-7002","0190a1b2-anon-7002"],"properties":{"email":"u7002@example.com"},"created_at":"2024-02-01T00:00:00Z","last_seen_at":"2024-06-01T00:00:00Z","is_identified":true}`,
		profile: true,
		want:    map[string]string{"event_type": `"$identify"`, "user_id": `"user-7002"`, "insert_id": `"0190a1b2-person-2"`, "user_properties.$set.email": `"u7002@example.com"`},
	},
	{
		name: "PostHogDeletedPerson", preset: "posthog", cite: "https://posthog.com/docs/cdp/batch-exports/s3",
		in:      `{"team_id":1,"distinct_id":"user-7009","person_id":"0190a1b2-person-9","properties":{},"person_version":5,"is_deleted":true,"created_at":"2024-01-01T00:00:00Z"}`,
		skipped: true,
	},
	// Segment.
	{
		name: "SegmentAmplitudeDisabled", preset: "segment", cite: "https://segment.com/docs/guides/filtering-data/",
		in:      `{"type":"track","event":"Internal Ping","userId":"user-1001","messageId":"m-ex-1","timestamp":"2024-05-01T12:30:45Z","integrations":{"Amplitude":false}}`,
		skipped: true,
	},
	{
		name: "SegmentAllDisabled", preset: "segment", cite: "https://segment.com/docs/connections/spec/common/",
		in:      `{"type":"track","event":"Only Intercom","userId":"user-1001","messageId":"m-ex-2","timestamp":"2024-05-01T12:30:45Z","integrations":{"All":false,"Intercom":true}}`,
		skipped: true,
	},
	{
		name: "SegmentAllDisabledAmplitudeOn", preset: "segment", cite: "https://segment.com/docs/connections/spec/common/",
		in:   `{"type":"track","event":"Amplitude Only","userId":"user-1001","messageId":"m-ex-3","timestamp":"2024-05-01T12:30:45Z","integrations":{"All":false,"Amplitude":{"session_id":1714566600000}}}`,
		want: map[string]string{"event_type": `"Amplitude Only"`, "insert_id": `"m-ex-3"`, "session_id": "1714566600000"},
	},
	{
		name: "SegmentIdentifyProfile", preset: "segment", cite: "https://segment.com/docs/connections/spec/common/",
		in:      `{"type":"identify","userId":"user-1002","anonymousId":"anon-1002-abc","messageId":"m-id-2","timestamp":"2024-05-01T12:31:00Z","traits":{"email":"m@example.com"}}`,
		profile: true,
		want:    map[string]string{"event_type": `"$identify"`, "user_id": `"user-1002"`, "device_id": `"anon-1002-abc"`, "user_properties.$set.email": `"m@example.com"`, "$skip_user_properties_sync": "-"},
	},
	{
		name: "SegmentGroup", preset: "segment", cite: "https://segment.com/docs/connections/spec/common/",
		in:   `{"type":"group","groupId":"0e8c78ea9d97a7b8185e8632","userId":"user-1003","messageId":"m-gr-1","timestamp":"2024-05-01T12:36:00Z","traits":{"name":"Initech","employees":329}}`,
		want: map[string]string{"event_type": `"$groupidentify"`, "groups.[Segment] Group": `"0e8c78ea9d97a7b8185e8632"`, "group_properties.$set.employees": "329"},
	},
	{
		name: "SegmentMobile", preset: "segment", cite: "https://segment.com/docs/connections/spec/common/",
		in:   `{"type":"screen","name":"Home","userId":"user-1004","messageId":"m-sc-1","timestamp":"2024-05-01T12:37:00Z","context":{"library":{"name":"analytics-ios","version":"4.1.8"},"os":{"name":"iOS","version":"17.2"}}}`,
		want: map[string]string{"event_type": `"Viewed Home Screen"`, "platform": `"iOS"`, "os_name": `"iOS"`},
	},
	// Amplitude Export API.
	{
		name: "AmplitudeExportRevenue", preset: "amplitude-export", cite: "https://amplitude.com/docs/apis/analytics/export",
		in: `{"$insert_id":"5f2a1c4e-2222-4a1b-9c1d-000000000009","amplitude_id":123456789012,"device_id":"C8F9E604-F01A-4BD9-95C6-8E5357DF265D","event_properties":{"$price":4.99,"$quantity":2,"$revenue":9.98,"$productId":"gems","$revenueType":"purchase"},"event_time":"2024-01-02 03:10:00.000000","event_type":"Purchase","user_id":"user@example.com","uuid":"a1b2c3d4-0000-11ee-8000-000000000009","platform":"iOS","os_name":"ios"}`,
		want: map[string]string{"insert_id": `"5f2a1c4e-2222-4a1b-9c1d-000000000009"`, "revenue": "9.98", "price": "4.99", "quantity": "2", "productId": `"gems"`, "revenueType": `"purchase"`,
			"platform": `"iOS"`, "amplitude_id": "-", "uuid": "-"},
	},
	// GA4 BigQuery export (JSON; the Parquet shape is in ga4_parquet_test.go).
	{
		name: "GA4App", preset: "ga4", cite: "https://support.google.com/analytics/answer/7029846",
		in:   `{"event_date":"20240601","event_timestamp":"1717232400123456","event_name":"screen_view","event_params":[{"key":"ga_session_id","value":{"int_value":"1717232000"}}],"event_bundle_sequence_id":"7","user_pseudo_id":"ga-app-instance-1","platform":"IOS","device":{"operating_system":"iOS","operating_system_version":"iOS 17.2"}}`,
		want: map[string]string{"platform": `"iOS"`, "device_id": `"ga-app-instance-1"`, "time": "1717232400123", "session_id": "1717232000000"},
	},
}

// TestVendorShapes maps one record of every export shape each vendor
// documents (the page is in each case) and checks the fields the issue's
// mapping decisions promise.
func TestVendorShapes(t *testing.T) {
	mappers := map[string]*mapping.Mapper{}
	for i, tc := range vendorCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cite == "" {
				t.Fatal("no documentation page cited")
			}
			m := mappers[tc.preset]
			if m == nil {
				m = newMapper(t, mapping.Options{Preset: tc.preset, SkipUserPropertiesSync: true})
				mappers[tc.preset] = m
			}
			ev, err := m.Map(rec(i, tc.in))
			switch {
			case tc.skipped:
				if !errors.Is(err, mapping.ErrSkipped) {
					t.Fatalf("err=%v, want ErrSkipped", err)
				}
				var me *mapping.Error
				if !errors.As(err, &me) || me.Code != mapping.CodeSkipped || !strings.HasPrefix(me.Record.Reason, "skipped: excluded at the source") {
					t.Fatalf("err=%#v", err)
				}
				return
			case tc.errCode != "":
				var me *mapping.Error
				if !errors.As(err, &me) || me.Code != tc.errCode {
					t.Fatalf("err=%v, want code %s", err, tc.errCode)
				}
				return
			case err != nil:
				t.Fatalf("map: %v", err)
			}
			if ev.Profile != tc.profile {
				t.Errorf("Profile=%v, want %v", ev.Profile, tc.profile)
			}
			var obj map[string]any
			if err := json.Unmarshal(ev.Raw, &obj); err != nil {
				t.Fatal(err)
			}
			for path, want := range tc.want {
				got, ok := lookupPath(obj, path)
				switch {
				case want == "-" && ok:
					t.Errorf("%s = %s, want absent\n%s", path, got, ev.Raw)
				case want != "-" && got != want:
					t.Errorf("%s = %s, want %s\n%s", path, got, want, ev.Raw)
				}
			}
		})
	}
}

// lookupPath finds a dotted path whose keys may contain dots only as a
// whole last segment ("groups.[Segment] Group").
func lookupPath(obj map[string]any, path string) (string, bool) {
	var cur any = obj
	parts := strings.Split(path, ".")
	for i, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		v, ok := m[p]
		if !ok {
			// a key holding dots: try the rest joined
			if v, ok = m[strings.Join(parts[i:], ".")]; !ok {
				return "", false
			}
			cur = v
			break
		}
		cur = v
	}
	b, _ := json.Marshal(cur)
	return string(b), true
}

// A source exclusion is skipped by default and sent with IncludeExcluded.
func TestIncludeExcluded(t *testing.T) {
	in := `{"type":"track","event":"Internal Ping","userId":"user-1001","messageId":"m-ex-1","timestamp":"2024-05-01T12:30:45Z","integrations":{"Amplitude":false}}`
	for _, include := range []bool{false, true} {
		m := newMapper(t, mapping.Options{Preset: "segment", IncludeExcluded: include})
		_, err := m.Map(rec(0, in))
		if got := errors.Is(err, mapping.ErrSkipped); got == include || (include && err != nil) {
			t.Errorf("IncludeExcluded=%v: err=%v", include, err)
		}
		if st := m.Stats(); st.Skipped != map[bool]int64{false: 1, true: 0}[include] {
			t.Errorf("IncludeExcluded=%v: Stats.Skipped=%d", include, st.Skipped)
		}
	}
}

// Two Mixpanel events that share an $insert_id but differ in name are two
// events at Mixpanel (its dedupe key is name, distinct_id, time and
// $insert_id) and must not collapse in Amplitude; a true duplicate (all four
// equal) keeps one id, so Amplitude drops it as Mixpanel does.
func TestMixpanelDedupeKey(t *testing.T) {
	m := newMapper(t, mapping.Options{Preset: "mixpanel"})
	mk := func(i int, name string) backfill.Event {
		ev, err := m.Map(rec(i, `{"event":"`+name+`","properties":{"time":1618716477,"distinct_id":"user-0001","$insert_id":"same-id"}}`))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	a, b, a2 := mk(0, "Order Placed"), mk(1, "Payment Captured"), mk(2, "Order Placed")
	if a.InsertID == b.InsertID {
		t.Errorf("different events share insert_id %s", a.InsertID)
	}
	if a.InsertID != a2.InsertID {
		t.Errorf("a duplicate at Mixpanel got a new insert_id: %s vs %s", a.InsertID, a2.InsertID)
	}
	if !strings.HasPrefix(a.InsertID, "bfh-") {
		t.Errorf("insert_id %s is not hash-derived", a.InsertID)
	}
}
