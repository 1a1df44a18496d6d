output "api_url" {
  description = "Base URL of the HTTP API: POST <api_url>/GenerateOTP and <api_url>/VerifyOTP."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "table_name" {
  description = "The DynamoDB table."
  value       = aws_dynamodb_table.codes.name
}

output "table_stream_arn" {
  description = "The table's stream, which feeds SendOTPEmail."
  value       = aws_dynamodb_table.codes.stream_arn
}

output "function_names" {
  description = "The three Lambda functions."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "dead_letter_queue_url" {
  description = "Stream records that kept failing to send land here."
  value       = aws_sqs_queue.send_dlq.url
}

output "secret_parameter_name" {
  description = "The SSM SecureString holding the code key (OTPD_SECRET_PARAMETER)."
  value       = aws_ssm_parameter.secret.name
}
