//! The agent API that Hull's guest agent serves and its host runtime calls.
//!
//! The wire format is the Kata Containers agent protocol (ttrpc over a stream socket);
//! the `.proto` files under `proto/` are written from the facts in the project's
//! agent-api.md and compiled to Rust at build time by `ttrpc-codegen`'s pure-Rust parser.
//!
//! Generated modules, one per `.proto` file:
//! - [`agent`], [`health`], [`oci`], [`csi`], [`types`], [`empty`]: the messages;
//! - [`agent_ttrpc`], [`health_ttrpc`]: async ttrpc services and clients
//!   (`AgentService` / `create_agent_service` / `AgentServiceClient`, and
//!   `Health` / `create_health` / `HealthClient`).
//!
//! A server registers the generated service maps on a ttrpc server:
//! `ttrpc::r#async::Server::new().bind("unix:///path")?` (or `"vsock://-1:1024"`), then
//! `.register_service(health_ttrpc::create_health(Arc::new(h)))` and
//! `.register_service(agent_ttrpc::create_agent_service(Arc::new(a)))`, then
//! `.start().await`. The generated trait methods that a service does not override
//! answer `NOT_FOUND`; the agent overrides every RPC so that missing ones say
//! `UNIMPLEMENTED`. A client wraps one connection,
//! `ttrpc::r#async::Client::connect("unix:///path").await?` or
//! `Client::new(ttrpc::r#async::transport::Socket::new(stream))` for an already
//! connected stream (a hybrid-vsock Unix socket after its `CONNECT` handshake), in
//! `AgentServiceClient::new(client.clone())` and `HealthClient::new(client)`;
//! `tests/service.rs` does both.
//!
//! [`oci_convert`] maps the OCI messages to and from the `oci-spec` crate's types.
//!
//! [`ttrpc`], [`protobuf`] and [`oci_spec`] are re-exported so that every Hull crate
//! uses the versions the generated code and the conversions were built against.
//!
//! Limitations: only the async (tokio) ttrpc flavour is generated; there is no
//! blocking client or server.

include!(concat!(env!("OUT_DIR"), "/modules.rs"));

pub use oci_spec;
pub use protobuf;
pub use ttrpc;

pub mod oci_convert;

#[cfg(test)]
mod tests {
    //! Encoded bytes checked against hand-computed protobuf encodings, so that a wrong
    //! field number or type in a `.proto` file fails here. A tag byte is
    //! `field_number << 3 | wire_type` (0 varint, 2 length-delimited).

    use protobuf::Message;

    use super::{agent, csi, health, oci, types};

    fn encode(msg: &impl Message) -> Vec<u8> {
        msg.write_to_bytes()
            .expect("in-memory encoding cannot fail")
    }

    #[test]
    fn create_container_request_uses_fields_1_and_9() {
        let req = agent::CreateContainerRequest {
            container_id: "c1".into(),
            stdin_port: 5,
            ..Default::default()
        };
        assert_eq!(encode(&req), [0x0a, 0x02, b'c', b'1', 0x48, 0x05]);
    }

    #[test]
    fn create_container_request_carries_spec_in_field_6() {
        let req = agent::CreateContainerRequest {
            OCI: Some(oci::Spec {
                Hostname: "h".into(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        // 6 << 3 | 2 = 0x32, holding Spec field 4 (0x22) "h".
        assert_eq!(encode(&req), [0x32, 0x03, 0x22, 0x01, b'h']);
    }

    #[test]
    fn reseed_random_dev_data_is_field_2() {
        let req = agent::ReseedRandomDevRequest {
            data: vec![1, 2, 3],
            ..Default::default()
        };
        assert_eq!(encode(&req), [0x12, 0x03, 1, 2, 3]);
    }

    #[test]
    fn fs_group_fields_are_2_and_3() {
        let group = agent::FSGroup {
            group_id: 1000,
            group_change_policy: types::FSGroupChangePolicy::OnRootMismatch.into(),
            ..Default::default()
        };
        // 1000 = 0xe8 0x07 as a varint.
        assert_eq!(encode(&group), [0x10, 0xe8, 0x07, 0x18, 0x01]);
    }

    #[test]
    fn syscall_errnoret_is_a_oneof_in_field_3() {
        let mut syscall = oci::LinuxSyscall::new();
        syscall.set_errnoret(0);
        // A oneof member is sent even when zero: presence is the point.
        assert_eq!(encode(&syscall), [0x18, 0x00]);
        syscall.set_errnoret(1);
        assert_eq!(encode(&syscall), [0x18, 0x01]);

        let decoded = oci::LinuxSyscall::parse_from_bytes(&[0x18, 0x00]).expect("valid bytes");
        assert!(decoded.has_errnoret());
        assert!(!oci::LinuxSyscall::new().has_errnoret());
    }

    #[test]
    fn mem_agent_config_optional_fields_keep_presence() {
        let config = agent::MemAgentMemcgConfig {
            swap: Some(false),
            period_secs: Some(300),
            ..Default::default()
        };
        // 300 = 0xac 0x02 as a varint.
        assert_eq!(encode(&config), [0x10, 0x00, 0x20, 0xac, 0x02]);
        let decoded =
            agent::MemAgentMemcgConfig::parse_from_bytes(&encode(&config)).expect("valid bytes");
        assert_eq!(decoded.swap, Some(false));
        assert_eq!(decoded.disabled, None);
    }

    #[test]
    fn negative_int32_is_a_ten_byte_varint() {
        let req = agent::CopyFileRequest {
            uid: -1,
            ..Default::default()
        };
        let mut expected = vec![0x28];
        expected.extend([0xff; 9]);
        expected.push(0x01);
        assert_eq!(encode(&req), expected);
    }

    #[test]
    fn string_map_entries_are_key_1_value_2() {
        let spec = oci::Spec {
            Annotations: [("k".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(
            encode(&spec),
            [0x3a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v']
        );
    }

    #[test]
    fn memory_stats_map_is_field_6() {
        let stats = agent::MemoryStats {
            stats: [("a".to_owned(), 1)].into(),
            ..Default::default()
        };
        assert_eq!(encode(&stats), [0x32, 0x05, 0x0a, 0x01, b'a', 0x10, 0x01]);
    }

    #[test]
    fn interface_addresses_are_field_3() {
        let iface = types::Interface {
            IPAddresses: vec![types::IPAddress {
                family: types::IPFamily::v6.into(),
                address: "::1".into(),
                ..Default::default()
            }],
            raw_flags: 1,
            ..Default::default()
        };
        let expected = [
            0x1a, 0x07, 0x08, 0x01, 0x12, 0x03, b':', b':', b'1', // IPAddresses
            0x40, 0x01, // raw_flags
        ];
        assert_eq!(encode(&iface), expected);
    }

    #[test]
    fn guest_details_and_health_messages() {
        let details = agent::GuestDetailsResponse {
            mem_block_size_bytes: 128,
            support_mem_hotplug_probe: true,
            ..Default::default()
        };
        // 128 = 0x80 0x01 as a varint.
        assert_eq!(encode(&details), [0x08, 0x80, 0x01, 0x18, 0x01]);

        let check = health::HealthCheckResponse {
            status: health::health_check_response::ServingStatus::SERVING.into(),
            ..Default::default()
        };
        assert_eq!(encode(&check), [0x08, 0x01]);
    }

    #[test]
    fn volume_usage_unit_is_field_4() {
        let usage = csi::VolumeUsage {
            used: 2,
            unit: csi::volume_usage::Unit::INODES.into(),
            ..Default::default()
        };
        assert_eq!(encode(&usage), [0x18, 0x02, 0x20, 0x02]);
    }

    #[test]
    fn set_guest_date_time_fields() {
        let req = agent::SetGuestDateTimeRequest {
            Sec: 1,
            Usec: 2,
            ..Default::default()
        };
        assert_eq!(encode(&req), [0x08, 0x01, 0x10, 0x02]);
    }

    #[test]
    fn truncated_message_is_an_error() {
        // Field 1 announces 5 bytes but only 2 follow.
        assert!(agent::StartContainerRequest::parse_from_bytes(&[0x0a, 0x05, b'c', b'1']).is_err());
    }
}
