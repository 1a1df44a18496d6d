# The table's stream is the outbox: SendOTPEmail mails each newly issued code
# (INSERT, and MODIFY when a resend added a code), reports partial batch
# failures by sequence number, and what keeps failing goes to a queue.

resource "aws_sqs_queue" "send_dlq" {
  #checkov:skip=CKV_AWS_27:encrypted with the module's customer-managed key (kms_master_key_id), which this check does not look at.
  name                      = "${var.name_prefix}-send-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.otpd.arn
  tags                      = var.tags
}

resource "aws_lambda_event_source_mapping" "stream" {
  event_source_arn  = aws_dynamodb_table.codes.stream_arn
  function_name     = aws_lambda_function.this["SendOTPEmail"].arn
  starting_position = "LATEST"
  batch_size        = 25

  function_response_types            = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.stream_max_retries
  maximum_record_age_in_seconds      = var.code_ttl_seconds
  maximum_batching_window_in_seconds = 0

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.send_dlq.arn
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  alarm_name          = "${var.name_prefix}-send-dlq-not-empty"
  alarm_description   = "Code mails that could not be sent after every retry."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.send_dlq.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = local.functions
  alarm_name          = "${var.name_prefix}-${each.key}-errors"
  alarm_description   = "${each.key} failed (errors or timeouts)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}
