"""lstmkit.ops"""
