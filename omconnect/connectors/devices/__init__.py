"""Device sources: MQTT, OPC-UA and Modbus telemetry into records."""
