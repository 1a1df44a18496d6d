resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.functions
  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.otpd.arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:the functions call only AWS APIs (DynamoDB, SES, SSM); a VPC would add NAT cost and cold-start time and protect nothing.
  #checkov:skip=CKV_AWS_116:GenerateOTP and VerifyOTP are invoked synchronously by API Gateway; SendOTPEmail's failures go to the stream mapping's on-failure queue.
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile the operator owns; the zips come from the operator's own build.
  for_each = local.functions

  function_name    = "${var.name_prefix}-${each.key}"
  description      = "otpd ${each.key}"
  role             = aws_iam_role.function[each.key].arn
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = "${var.lambda_zip_dir}/${each.value}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/${each.value}/bootstrap.zip")
  memory_size      = 128
  timeout          = each.key == "SendOTPEmail" ? 60 : 10
  kms_key_arn      = aws_kms_key.otpd.arn

  reserved_concurrent_executions = var.reserved_concurrency

  environment {
    variables = local.common_environment
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  tags = var.tags
}
